//! fs2tar: images made by the host's tools from a tree, archived by our
//! kernel's drivers; the archive's listing must equal GNU tar's listing of
//! the same tree, and what it extracts must equal the tree.

use std::fs;
use std::path::Path;
use std::process::Command;

use testkit::images::{make_image, run, FuseMount, Scratch};

const FS2TAR: &str = env!("CARGO_BIN_EXE_fs2tar");

/// A tree with what tar must carry: sizes from 0 to 20 MB, nesting, odd
/// names, modes, owners, times, symlinks, hard links, devices, a FIFO and
/// an extended attribute.
fn make_tree(src: &Path) {
    fs::create_dir_all(src.join("deep/er/still/deeper")).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("small.txt"), b"small\n").unwrap();
    let big: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    fs::write(src.join("deep/big.bin"), &big).unwrap();
    fs::write(src.join("deep/er/still/deeper/leaf"), b"leaf").unwrap();
    fs::write(src.join("odd name, ü \u{1F600} 'q'"), b"odd").unwrap();
    fs::write(src.join(format!("long-{}", "n".repeat(150))), b"long").unwrap();
    std::os::unix::fs::symlink("small.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/no/such/target", src.join("dangling")).unwrap();
    fs::hard_link(src.join("small.txt"), src.join("deep/hard")).unwrap();
    let s = |p: &str| src.join(p).to_str().unwrap().to_owned();
    run("mkfifo", &[&s("fifo")]);
    run("mknod", &[&s("null"), "c", "1", "3"]);
    run("mknod", &[&s("sda1"), "b", "8", "1"]);
    run("chmod", &["4750", &s("deep/big.bin")]);
    run("chmod", &["0600", &s("small.txt")]);
    run("chown", &["123:456", &s("small.txt")]);
    run("chown", &["-h", "7:8", &s("link")]);
    run(
        "touch",
        &[
            "-d",
            "2001-02-03 04:05:06 UTC",
            &s("deep/er/still/deeper/leaf"),
        ],
    );
    run(
        "/usr/bin/python3",
        &[
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], 'user.note', b'kept in PAX')",
            &s("small.txt"),
        ],
    );
    // Directory times last (their contents changed them).
    run("touch", &["-d", "2010-01-01 UTC", &s("deep/er")]);
}

/// `tar -tv` lines, numeric owners, names without "./", sorted; the root
/// and lost+found left out.
fn listing(tarfile: &Path) -> Vec<String> {
    let out = run(
        "tar",
        &["--numeric-owner", "-tvf", tarfile.to_str().unwrap()],
    );
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| !l.ends_with(" ./") && !l.ends_with(" .") && !l.contains("lost+found"))
        .map(|l| l.replace(" ./", " ").replace("link to ./", "link to "))
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines.sort();
    lines
}

fn fs2tar(args: &[&str]) {
    let out = Command::new(FS2TAR).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "fs2tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_against_tree(src: &Path, image_tar: &Path, s: &Scratch) {
    let reference = s.path("ref.tar");
    run(
        "tar",
        &[
            "--sort=name",
            "-C",
            src.to_str().unwrap(),
            "-cf",
            reference.to_str().unwrap(),
            ".",
        ],
    );
    let (want, got) = (listing(&reference), listing(image_tar));
    assert_eq!(want, got, "listings differ");
    // Extract and compare contents, and the attribute.
    let out = s.path("out");
    fs::create_dir_all(&out).unwrap();
    run(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "-xpf",
            image_tar.to_str().unwrap(),
            "-C",
            out.to_str().unwrap(),
        ],
    );
    let _ = fs::remove_dir(out.join("lost+found"));
    run(
        "diff",
        // (special files: the listing above checked them; diff cannot)
        &[
            "-r",
            "--no-dereference",
            "-x",
            "fifo",
            "-x",
            "null",
            "-x",
            "sda1",
            src.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    let v = run(
        "/usr/bin/python3",
        &[
            "-c",
            "import os,sys; print(os.getxattr(sys.argv[1], 'user.note').decode())",
            out.join("small.txt").to_str().unwrap(),
        ],
    );
    assert_eq!(v.trim(), "kept in PAX");
}

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn ext4_image_listing_equals_tree() {
    let s = Scratch::new("fs2tar-ext4");
    let src = s.path("src");
    make_tree(&src);
    let img = s.path("fs.img");
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-d",
            src.to_str().unwrap(),
            img.to_str().unwrap(),
            "64M",
        ],
    );
    let tar = s.path("fs.tar");
    fs2tar(&["-t", "ext4", img.to_str().unwrap(), tar.to_str().unwrap()]);
    check_against_tree(&src, &tar, &s);
    // The image was only read.
    run("e2fsck", &["-fn", img.to_str().unwrap()]);
}

/// A DOS (MBR) partition table with two Linux partitions, written by hand
/// (no partitioning tool needed): (start, sectors) each.
fn write_mbr(img: &Path, parts: &[(u32, u32)]) {
    let mut mbr = vec![0u8; 512];
    for (i, &(start, len)) in parts.iter().enumerate() {
        let e = &mut mbr[446 + 16 * i..446 + 16 * (i + 1)];
        e[4] = 0x83; // Linux
        e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]); // CHS: use LBA
        e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&len.to_le_bytes());
    }
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let f = fs::OpenOptions::new().write(true).open(img).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&mbr, 0).unwrap();
}

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn partition_of_an_mbr_image() {
    let s = Scratch::new("fs2tar-mbr");
    let src = s.path("src");
    make_tree(&src);
    let img = s.path("disk.img");
    fs::File::create(&img).unwrap().set_len(80 << 20).unwrap();
    // Partition 2 starts at sector 8192 (4 MiB) and is 64 MiB.
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-E",
            "offset=4194304",
            "-d",
            src.to_str().unwrap(),
            img.to_str().unwrap(),
            "64M",
        ],
    );
    write_mbr(&img, &[(2048, 4096), (8192, 131072)]);
    let tar = s.path("p2.tar");
    fs2tar(&[
        "-t",
        "ext4",
        img.to_str().unwrap(),
        tar.to_str().unwrap(),
        "-P",
        "2",
    ]);
    check_against_tree(&src, &tar, &s);
}

#[testkit::needs(mkfs_vfat, fuse)]
#[test]
fn vfat_filled_through_lklfuse() {
    let s = Scratch::new("fs2tar-vfat");
    let img = s.path("fat.img");
    make_image(&img, "vfat", 64);
    let fuse = FuseMount::start(&img, &s.path("mnt"), "type=vfat");
    fs::create_dir_all(fuse.dir.join("dir/sub")).unwrap();
    fs::write(fuse.dir.join("dir/sub/file.txt"), b"hello").unwrap();
    fs::write(fuse.dir.join("Mixed Case.TXT"), vec![1u8; 100_000]).unwrap();
    fs::write(fuse.dir.join("empty"), b"").unwrap();
    fuse.unmount();
    let tar = s.path("fat.tar");
    fs2tar(&["-t", "vfat", img.to_str().unwrap(), tar.to_str().unwrap()]);
    let names = run("tar", &["-tf", tar.to_str().unwrap()]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Mixed Case.TXT",
            "dir/",
            "dir/sub/",
            "dir/sub/file.txt",
            "empty"
        ]
    );
    let out = s.path("out");
    fs::create_dir_all(&out).unwrap();
    run(
        "tar",
        &["-xf", tar.to_str().unwrap(), "-C", out.to_str().unwrap()],
    );
    assert_eq!(fs::read(out.join("dir/sub/file.txt")).unwrap(), b"hello");
    assert_eq!(
        fs::read(out.join("Mixed Case.TXT")).unwrap(),
        vec![1u8; 100_000]
    );
}

fn fails(args: &[&str], want: &str) {
    testkit::refuses(FS2TAR, args, want);
}

#[testkit::needs(mkfs_vfat)]
#[test]
fn errors_are_one_line() {
    let s = Scratch::new("fs2tar-errors");
    let out = Command::new(FS2TAR).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("-t FSTYPE"));
    let img = s.path("fat.img");
    make_image(&img, "vfat", 32);
    let (i, t) = (img.to_str().unwrap(), s.path("o.tar"));
    let t = t.to_str().unwrap();
    fails(&["-t", "ext4", "/nonexistent.img", t], "nonexistent.img");
    fails(&[i, t], "-t FSTYPE");
    fails(&["-t", "ext4", i, t], "not a ext4 file system");
    fails(&["-t", "vfat", i, t, "-P", "2"], "partition 2");
    fails(
        &["-t", "vfat", i, "/nonexistent-dir/o.tar"],
        "cannot create",
    );
    assert!(!Path::new(t).exists(), "a failed run left {t}");
    // A corrupt image is refused, not a crash.
    let bad = s.path("bad.img");
    fs::write(&bad, vec![0x5au8; 4 << 20]).unwrap();
    fails(
        &["-t", "ext4", bad.to_str().unwrap(), t],
        "not a ext4 file system",
    );
}

/// LKL's fs2tar flags: `-p` shows the kernel's messages, `-s FILE` writes
/// each labelled file's SELinux context there; and `-P 0` is the whole disk.
#[testkit::needs(mkfs_ext4)]
#[test]
fn lkl_flags_printk_and_selinux_contexts() {
    let s = Scratch::new("fs2tar-lkl-flags");
    let img = s.path("fs.img");
    make_image(&img, "ext4", 32);
    let src = s.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), b"labelled").unwrap();
    let ctx = "system_u:object_r:etc_t:s0";
    let out = Command::new(env!("CARGO_BIN_EXE_cptofs"))
        .args(["-s", ctx, "-t", "ext4", "-i", img.to_str().unwrap()])
        .arg(&src)
        .arg("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let contexts = s.path("contexts.txt");
    let tar = s.path("o.tar");
    let out = Command::new(FS2TAR)
        .args([
            "-p",
            "-P",
            "0",
            "-s",
            contexts.to_str().unwrap(),
            "-t",
            "ext4",
        ])
        .arg(&img)
        .arg(&tar)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Linux version"), "-p: {stderr}");
    let text = fs::read_to_string(&contexts).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            format!("/src {ctx}"),
            format!("/src/d {ctx}"),
            format!("/src/d/f {ctx}")
        ],
        "contexts file:\n{text}"
    );
    // The archive still carries the label as an xattr, and without -p the
    // kernel says nothing.
    let out = Command::new(FS2TAR)
        .args(["-t", "ext4"])
        .arg(&img)
        .arg(&tar)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listing(&tar).iter().any(|l| l.ends_with(" src/d/f")));
}
