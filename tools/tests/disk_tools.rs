//! cptofs / cpfromfs end to end: images made by the host's mkfs tools, a
//! tree copied in and out again is identical, the host's fsck finds the
//! image clean; partitions (MBR, GPT written here); error cases.
//!
//! Every tool run is a process of its own (each boots its own kernel).

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use testkit::images::{fsck_clean, make_image, Scratch};
use testkit::wire::pattern;

const CPTOFS: &str = env!("CARGO_BIN_EXE_cptofs");
const CPFROMFS: &str = env!("CARGO_BIN_EXE_cpfromfs");

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(o.status.success(), "{cmd} {args:?} failed:\n{}", text(&o));
    text(&o)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tree of files from 0 bytes to 20 MB, nested directories, odd names,
/// modes; symlinks unless `fat`.
fn make_tree(root: &Path, fat: bool) {
    let dirs = ["a", "a/b", "a/b/c d", "ünïcødé ✓", "x-y_z.dir"];
    for d in dirs {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let files: [(&str, usize); 9] = [
        ("empty", 0),
        ("one", 1),
        ("a/page", 4096),
        ("a/page-1", 4095),
        ("a/b/meg+3", (1 << 20) + 3),
        ("a/b/c d/with space.txt", 1000),
        ("ünïcødé ✓/fïlé.bin", 70_000),
        ("x-y_z.dir/big", 20 << 20),
        ("-dash", 12),
    ];
    for (i, (f, len)) in files.iter().enumerate() {
        fs::write(root.join(f), pattern(*len, i as u64 + 1)).unwrap();
    }
    if !fat {
        for (f, m) in [("one", 0o600), ("a/page", 0o755), ("-dash", 0o640)] {
            fs::set_permissions(root.join(f), fs::Permissions::from_mode(m)).unwrap();
        }
        fs::set_permissions(root.join("a/b"), fs::Permissions::from_mode(0o750)).unwrap();
        symlink("page", root.join("a/rel-link")).unwrap();
        symlink("/no/such/target", root.join("dangling")).unwrap();
        symlink("../ünïcødé ✓", root.join("a/b/dirlink")).unwrap();
        std::os::unix::fs::lchown(root.join("a/page-1"), Some(1000), Some(100)).unwrap();
    }
    // A fixed mtime on one file and one directory (set last).
    let old = fs::File::open(root.join("one")).unwrap();
    old.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
        .unwrap();
}

/// Walks both trees and compares type, content, symlink target, and (unless
/// `fat`) mode, owner and mtime.
fn compare(a: &Path, b: &Path, fat: bool) {
    let ma = fs::symlink_metadata(a).unwrap();
    let mb = fs::symlink_metadata(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert_eq!(ma.file_type(), mb.file_type(), "type of {}", b.display());
    if !fat {
        assert_eq!(ma.mode(), mb.mode(), "mode of {}", b.display());
        assert_eq!(
            (ma.uid(), ma.gid()),
            (mb.uid(), mb.gid()),
            "owner of {}",
            b.display()
        );
        if !ma.is_dir() {
            assert_eq!(
                (ma.mtime(), ma.mtime_nsec()),
                (mb.mtime(), mb.mtime_nsec()),
                "mtime of {}",
                b.display()
            );
        }
    } else if ma.is_file() {
        // FAT keeps mtimes at 2 s granularity.
        assert!(
            (ma.mtime() - mb.mtime()).abs() <= 2,
            "mtime of {}",
            b.display()
        );
    }
    if ma.file_type().is_symlink() {
        assert_eq!(fs::read_link(a).unwrap(), fs::read_link(b).unwrap());
    } else if ma.is_file() {
        assert!(
            fs::read(a).unwrap() == fs::read(b).unwrap(),
            "content of {}",
            b.display()
        );
    } else if ma.is_dir() {
        let names = |p: &Path| {
            let mut v: Vec<_> = fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        assert_eq!(na, nb, "entries of {}", b.display());
        for n in na {
            compare(&a.join(&n), &b.join(&n), fat);
        }
    }
}

/// Copies a tree into `image` with cptofs and out with cpfromfs, compares,
/// runs the host's fsck.
fn round_trip(fstype: &str, mb: u64) {
    let dir = Scratch::new(&format!("disk-tools-{fstype}"));
    let img = dir.join("fs.img");
    make_image(&img, fstype, mb);
    let tree = dir.join("tree");
    let fat = fstype == "vfat";
    make_tree(&tree, fat);
    ok(CPTOFS, &["-t", fstype, "-i", s(&img), s(&tree), "/"]);
    fsck_clean(&img, fstype);
    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    ok(CPFROMFS, &["-t", fstype, "-i", s(&img), "/tree", s(&out)]);
    compare(&tree, &out.join("tree"), fat);
    let diff = run(
        "diff",
        &["-r", "--no-dereference", s(&tree), s(&out.join("tree"))],
    );
    assert!(diff.status.success(), "diff -r:\n{}", text(&diff));
    // Reading did not change the image.
    fsck_clean(&img, fstype);
}

#[testkit::needs(mkfs_ext4)]
#[test]
fn round_trip_ext4() {
    round_trip("ext4", 96);
}

#[testkit::needs(mkfs_vfat)]
#[test]
fn round_trip_vfat() {
    round_trip("vfat", 96);
}

#[testkit::needs(mkfs_xfs)]
#[test]
fn round_trip_xfs() {
    round_trip("xfs", 320);
}

#[testkit::needs(mkfs_btrfs)]
#[test]
fn round_trip_btrfs() {
    round_trip("btrfs", 256);
}

// ---- partition tables, written by hand (no sfdisk/sgdisk needed) ----

const SECTOR: u64 = 512;

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Writes a file system image into `disk` at sector `start`.
fn place(disk: &Path, start: u64, fs_img: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let data = fs::read(fs_img).unwrap();
    let mut f = fs::OpenOptions::new().write(true).open(disk).unwrap();
    f.seek(SeekFrom::Start(start * SECTOR)).unwrap();
    f.write_all(&data).unwrap();
}

fn write_at(disk: &Path, off: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().write(true).open(disk).unwrap();
    f.write_all_at(data, off).unwrap();
}

/// An MBR with the given (start, sectors, type) entries.
fn write_mbr(disk: &Path, parts: &[(u32, u32, u8)]) {
    let mut mbr = [0u8; 512];
    for (i, (start, len, kind)) in parts.iter().enumerate() {
        let e = 446 + 16 * i;
        mbr[e + 1..e + 4].copy_from_slice(&[0xfe, 0xff, 0xff]);
        mbr[e + 4] = *kind;
        mbr[e + 5..e + 8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        mbr[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
        mbr[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
    }
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    write_at(disk, 0, &mbr);
}

/// A GPT (protective MBR, primary and backup headers and entry arrays)
/// with the given (first, last) sector ranges.
fn write_gpt(disk: &Path, parts: &[(u64, u64)]) {
    let total = fs::metadata(disk).unwrap().len() / SECTOR;
    write_mbr(
        disk,
        &[(1, (total - 1).min(u64::from(u32::MAX)) as u32, 0xee)],
    );
    let mut entries = vec![0u8; 128 * 128];
    // Linux filesystem data type GUID 0FC63DAF-8483-4772-8E79-3D69D8477DE4.
    let linux: [u8; 16] = [
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ];
    for (i, (first, last)) in parts.iter().enumerate() {
        let e = &mut entries[128 * i..128 * (i + 1)];
        e[0..16].copy_from_slice(&linux);
        e[16..32].copy_from_slice(&[i as u8 + 1; 16]);
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
    }
    let entries_crc = crc32(&entries);
    let header = |my: u64, alt: u64, entries_lba: u64| {
        let mut h = [0u8; 92];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(total - 34).to_le_bytes());
        h[56..72].copy_from_slice(&[0x42; 16]);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let c = crc32(&h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        h
    };
    write_at(disk, SECTOR, &header(1, total - 1, 2));
    write_at(disk, 2 * SECTOR, &entries);
    write_at(disk, (total - 33) * SECTOR, &entries);
    write_at(
        disk,
        (total - 1) * SECTOR,
        &header(total - 1, 1, total - 33),
    );
}

fn partitioned(gpt: bool) {
    let dir = Scratch::new(if gpt {
        "disk-tools-gpt"
    } else {
        "disk-tools-mbr"
    });
    let disk = dir.join("disk.img");
    fs::File::create(&disk).unwrap().set_len(80 << 20).unwrap();
    let p1 = dir.join("p1.img");
    let p2 = dir.join("p2.img");
    make_image(&p1, "vfat", 16);
    make_image(&p2, "ext4", 32);
    let (s1, s2) = (2048u64, 2048 + (16 << 11) + 2048);
    if gpt {
        write_gpt(
            &disk,
            &[(s1, s1 + (16 << 11) - 1), (s2, s2 + (32 << 11) - 1)],
        );
    } else {
        write_mbr(
            &disk,
            &[(s1 as u32, 16 << 11, 0x0c), (s2 as u32, 32 << 11, 0x83)],
        );
    }
    place(&disk, s1, &p1);
    place(&disk, s2, &p2);
    let src = dir.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f1"), pattern(300_000, 9)).unwrap();
    symlink("f1", src.join("l")).unwrap();
    let d = s(&disk);
    ok(CPTOFS, &["-t", "ext4", "-i", d, "-P", "2", s(&src), "/"]);
    ok(
        CPTOFS,
        &["-t", "vfat", "-i", d, "-P", "1", s(&src.join("f1")), "/"],
    );
    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    ok(
        CPFROMFS,
        &["-t", "ext4", "-i", d, "-P", "2", "/src", s(&out)],
    );
    compare(&src, &out.join("src"), false);
    ok(
        CPFROMFS,
        &[
            "-t",
            "vfat",
            "-i",
            d,
            "-P",
            "1",
            "/f1",
            s(&out.join("fat-f1")),
        ],
    );
    assert_eq!(fs::read(out.join("fat-f1")).unwrap(), pattern(300_000, 9));
    // The partitions' file systems are clean: check them in place by
    // copying them back out of the disk image.
    let data = fs::read(&disk).unwrap();
    let s2b = (s2 * SECTOR) as usize;
    fs::write(&p2, &data[s2b..s2b + (32 << 20)]).unwrap();
    ok("e2fsck", &["-fn", s(&p2)]);
    let s1b = (s1 * SECTOR) as usize;
    fs::write(&p1, &data[s1b..s1b + (16 << 20)]).unwrap();
    ok("fsck.vfat", &["-n", s(&p1)]);
    // No partition 3.
    let o = run(CPTOFS, &["-t", "ext4", "-i", d, "-P", "3", s(&src), "/"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("has no partition 3 (partitions: 1, 2)"),
        "{}",
        text(&o)
    );
}

#[testkit::needs(mkfs_ext4, mkfs_vfat)]
#[test]
fn mbr_partitions() {
    partitioned(false);
}

#[testkit::needs(mkfs_ext4, mkfs_vfat)]
#[test]
fn gpt_partitions() {
    partitioned(true);
}

// ---- errors ----

fn fails_with(args: &[&str], want: &str) {
    let o = run(CPTOFS, args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {t}");
    assert!(t.contains(want), "{args:?}: expected {want:?} in:\n{t}");
    assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
}

#[testkit::needs(mkfs_ext4)]
#[test]
fn errors_are_one_line_and_nonzero() {
    let dir = Scratch::new("disk-tools-errors");
    let img = dir.join("e.img");
    make_image(&img, "ext4", 16);
    let src = dir.join("src");
    fs::create_dir(&src).unwrap();
    for n in ["a", "b", "c"] {
        fs::write(src.join(n), pattern(6 << 20, 3)).unwrap();
    }
    let missing = dir.join("missing.img");
    fails_with(
        &["-t", "ext4", "-i", s(&missing), s(&src), "/"],
        "cannot open image",
    );
    fails_with(
        &["-t", "xfs", "-i", s(&img), s(&src), "/"],
        "is not a xfs file system",
    );
    fails_with(
        &["-t", "nosuchfs", "-i", s(&img), s(&src), "/"],
        "unknown file-system type nosuchfs",
    );
    // Full: the file that did not fit is named.
    fails_with(
        &["-t", "ext4", "-i", s(&img), s(&src), "/"],
        "No space left on device",
    );
    let o = run(CPTOFS, &["-t", "ext4", "-i", s(&img), s(&src), "/"]);
    assert!(text(&o).contains(&format!("{}:/src/", img.display())));
    ok("e2fsck", &["-fn", s(&img)]);
    // A corrupt image is refused (and nothing crashes).
    let junk = dir.join("junk.img");
    fs::write(&junk, pattern(4 << 20, 5)).unwrap();
    let o = run(CPFROMFS, &["-t", "ext4", "-i", s(&junk), "/", s(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("is not a ext4 file system"),
        "{}",
        text(&o)
    );
    // A damaged ext4 (block groups overwritten) is refused or read with
    // errors, never a crash.
    let damaged = dir.join("damaged.img");
    let mut bytes = fs::read(&img).unwrap();
    bytes[4096..4096 * 64].copy_from_slice(&pattern(4096 * 63, 6));
    fs::write(&damaged, &bytes).unwrap();
    let out = dir.join("dout");
    fs::create_dir(&out).unwrap();
    let o = run(CPFROMFS, &["-t", "ext4", "-i", s(&damaged), "/", s(&out)]);
    assert!(
        o.status.code().is_some(),
        "killed by a signal: {}",
        text(&o)
    );
    // Usage errors and --help.
    let o = run(CPTOFS, &["-t", "ext4", s(&src)]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(CPFROMFS, &["--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("Usage: cpfromfs"));
}

#[testkit::needs(mkfs_ext4)]
#[test]
fn glob_in_last_component() {
    let dir = Scratch::new("disk-tools-glob");
    let img = dir.join("g.img");
    make_image(&img, "ext4", 16);
    let src = dir.join("src");
    fs::create_dir(&src).unwrap();
    for n in ["x1.txt", "x2.txt", "y.bin", ".hidden.txt"] {
        fs::write(src.join(n), n).unwrap();
    }
    ok(
        CPTOFS,
        &[
            "-t",
            "ext4",
            "-i",
            s(&img),
            &format!("{}/*.txt", s(&src)),
            "/",
        ],
    );
    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    ok(CPFROMFS, &["-t", "ext4", "-i", s(&img), "/x?.*", s(&out)]);
    let mut names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["x1.txt", "x2.txt"]);
}

/// Checks every regular file under `img_dir` (a cpfromfs copy) against its
/// source under `src_dir`: no longer than the source, and each 4 KiB block
/// either the source's or zeros (data the killed copy had not written yet
/// reads as holes or unwritten extents; ext4 never exposes stale or foreign
/// blocks). Returns (complete files, others).
fn no_foreign_data(img_dir: &Path, src_dir: &Path) -> (usize, usize) {
    let (mut full, mut partial) = (0, 0);
    for e in fs::read_dir(img_dir).unwrap() {
        let e = e.unwrap();
        let (a, b) = (e.path(), src_dir.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            let (f, p) = no_foreign_data(&a, &b);
            full += f;
            partial += p;
        } else {
            let got = fs::read(&a).unwrap();
            let want = fs::read(&b).unwrap();
            assert!(got.len() <= want.len(), "{} grew", a.display());
            for (i, (g, w)) in got.chunks(4096).zip(want.chunks(4096)).enumerate() {
                assert!(
                    g == &w[..g.len()] || g.iter().all(|x| *x == 0),
                    "{}: block {i} is neither the source's nor zeros",
                    a.display()
                );
            }
            if got == want {
                full += 1;
            } else {
                partial += 1;
            }
        }
    }
    (full, partial)
}

#[testkit::needs(mkfs_ext4)]
#[test]
fn sigkill_mid_copy_is_repaired_by_the_journal() {
    let dir = Scratch::new("disk-tools-kill");
    let img = dir.join("k.img");
    make_image(&img, "ext4", 1000);
    // A first copy that completes.
    let before = dir.join("before");
    make_tree(&before, false);
    ok(CPTOFS, &["-t", "ext4", "-i", s(&img), s(&before), "/"]);
    // A second, long copy, killed part-way.
    let second = dir.join("second");
    for i in 0..600 {
        let sub = second.join(format!("d{}", i % 10));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(format!("f{i}")), pattern(1 << 20, 50 + i as u64)).unwrap();
    }
    let mut child = Command::new(CPTOFS)
        .args([
            "-t",
            "ext4",
            "-i",
            s(&img),
            "--mount-options",
            "commit=1",
            s(&second),
            "/",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    println!("second copy: {status}");
    // The journal brings the file system back; a second check is clean.
    let o = run("e2fsck", &["-fy", s(&img)]);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "e2fsck -fy: {}",
        text(&o)
    );
    ok("e2fsck", &["-fn", s(&img)]);
    // What was complete before the kill is intact.
    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    ok(CPFROMFS, &["-t", "ext4", "-i", s(&img), "/before", s(&out)]);
    compare(&before, &out.join("before"), false);
    // Whatever the killed copy left holds only its own data (or zeros where
    // it had not been written back: files not synced before a crash).
    let o = run(CPFROMFS, &["-t", "ext4", "-i", s(&img), "/second", s(&out)]);
    if o.status.success() {
        let (full, partial) = no_foreign_data(&out.join("second"), &second);
        println!("after the kill: {full} complete files, {partial} incomplete");
    } else {
        println!("nothing of the killed copy was committed: {}", text(&o));
    }
}

/// `User: N Group: M` of `path` in an ext image, read by the host's debugfs
/// (e2fsprogs, as mkfs.ext4).
fn ext_owner(img: &Path, path: &str) -> (u32, u32) {
    let o = ok("debugfs", &["-R", &format!("stat {path}"), s(img)]);
    let field = |name: &str| -> u32 {
        let at = o
            .find(name)
            .unwrap_or_else(|| panic!("no {name} in debugfs:\n{o}"));
        o[at + name.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad {name} in debugfs:\n{o}"))
    };
    (field("User:"), field("Group:"))
}

/// LKL's flags with LKL's meaning: `-o UID`, `-g GID` (owner of every copied
/// file), `-p` (kernel messages), `-P 0` (the whole disk), `-m MB`; our
/// mount options under their long names.
#[testkit::needs(mkfs_ext4)]
#[test]
fn lkl_flags_have_lkls_meaning() {
    let dir = Scratch::new("disk-tools-lkl-flags");
    let img = dir.join("l.img");
    make_image(&img, "ext4", 32);
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("a"), b"alpha").unwrap();
    fs::write(tree.join("sub/b"), pattern(100_000, 9)).unwrap();
    symlink("a", tree.join("l")).unwrap();
    // As the issue writes it: owner and group 0, printk, whole disk.
    let o = run(
        CPTOFS,
        &[
            "-o",
            "0",
            "-g",
            "0",
            "-p",
            "-P",
            "0",
            "-t",
            "ext4",
            "-i",
            s(&img),
            s(&tree),
            "/",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // -p: the kernel's messages (the ext4 mount's among them) on stderr.
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("EXT4-fs"),
        "-p printed no kernel messages:\n{}",
        text(&o)
    );
    for p in ["/tree", "/tree/a", "/tree/sub", "/tree/sub/b", "/tree/l"] {
        assert_eq!(ext_owner(&img, p), (0, 0), "{p}");
    }
    // Owners other than the source's, long forms, a memory size; no -p:
    // nothing from the kernel.
    let o = run(
        CPTOFS,
        &[
            "--owner",
            "1234",
            "--group",
            "4321",
            "-m",
            "64",
            "--partition",
            "0",
            "-t",
            "ext4",
            "--filesystem-image",
            s(&img),
            s(&tree),
            "/again",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("EXT4-fs"), "{}", text(&o));
    for p in ["/again", "/again/a", "/again/sub/b", "/again/l"] {
        assert_eq!(ext_owner(&img, p), (1234, 4321), "{p}");
    }
    // Only -g: owners stay the source's.
    let src_uid = fs::metadata(tree.join("a")).unwrap().uid();
    ok(
        CPTOFS,
        &[
            "-g",
            "77",
            "-t",
            "ext4",
            "-i",
            s(&img),
            s(&tree.join("a")),
            "/g",
        ],
    );
    assert_eq!(ext_owner(&img, "/g"), (src_uid, 77));
    // What -o meant before (the mount options), under its long names.
    ok(
        CPTOFS,
        &[
            "--mount-options",
            "noatime,commit=1",
            "-t",
            "ext4",
            "-i",
            s(&img),
            s(&tree.join("a")),
            "/m1",
        ],
    );
    assert!(ok("debugfs", &["-R", "ls -l /", s(&img)]).contains(" m1"));
    // --options (its other long name), read-only: the copy is refused.
    let o = run(
        CPTOFS,
        &[
            "--options",
            "ro",
            "-t",
            "ext4",
            "-i",
            s(&img),
            s(&tree.join("a")),
            "/m2",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("Read-only file system"), "{}", text(&o));
    fsck_clean(&img, "ext4");
    // cpfromfs -o/-g: the host copies get the owner (as root); as another
    // user the chown cannot happen and each file says so.
    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    let root = fs::metadata(&out).unwrap().uid() == 0;
    let o = run(
        CPFROMFS,
        &[
            "-o",
            "555",
            "-g",
            "666",
            "-P",
            "0",
            "-t",
            "ext4",
            "-i",
            s(&img),
            "/tree",
            s(&out),
        ],
    );
    if root {
        assert!(o.status.success(), "{}", text(&o));
        for p in ["tree", "tree/a", "tree/sub/b", "tree/l"] {
            let m = fs::symlink_metadata(out.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (555, 666), "{p}");
        }
    } else {
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains("cannot give owner 555:666"),
            "{}",
            text(&o)
        );
    }
}
