//! lklfuse: images made with the host's mkfs, mounted through FUSE, a
//! file-operation suite on the host side, unmount, then the host's fsck.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::images::{fsck_clean, is_mounted, make_image, run, FuseMount, Scratch};

const LKLFUSE: &str = env!("CARGO_BIN_EXE_lklfuse");

/// Deterministic content for writer `w`, block `i`.
fn pattern(w: u8, i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (w as usize * 31 + i * 7 + j) as u8 ^ w)
        .collect()
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path")
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let (cp, cn) = (cstr(p), CString::new(name).expect("name"));
    // SAFETY: NUL-terminated path and name, `value` valid for its length.
    let r = unsafe {
        libc::setxattr(
            cp.as_ptr(),
            cn.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn get_xattr(p: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let (cp, cn) = (cstr(p), CString::new(name).expect("name"));
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated path and name; the kernel writes at most
    // `buf.len()` bytes.
    let r = unsafe { libc::getxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

fn list_xattr(p: &Path) -> Vec<String> {
    let cp = cstr(p);
    let mut buf = vec![0u8; 4096];
    // SAFETY: as `get_xattr`.
    let r = unsafe { libc::listxattr(cp.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(r >= 0, "listxattr: {}", std::io::Error::last_os_error());
    buf[..r as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn remove_xattr(p: &Path, name: &str) -> std::io::Result<()> {
    let (cp, cn) = (cstr(p), CString::new(name).expect("name"));
    // SAFETY: NUL-terminated path and name.
    let r = unsafe { libc::removexattr(cp.as_ptr(), cn.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn statvfs(p: &Path) -> libc::statvfs {
    let cp = cstr(p);
    // SAFETY: statvfs is plain data, filled by the call.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a struct to fill.
    let r = unsafe { libc::statvfs(cp.as_ptr(), &mut s) };
    assert_eq!(r, 0, "statvfs: {}", std::io::Error::last_os_error());
    s
}

/// Four threads each write a file in 64 KiB pieces and one shared file at
/// disjoint offsets, at the same time; contents checked after.
fn concurrent_writers(m: &Path) {
    const BLOCKS: usize = 64;
    const BLK: usize = 64 << 10;
    let shared = m.join("shared");
    fs::File::create(&shared).unwrap();
    let threads: Vec<_> = (0..4u8)
        .map(|w| {
            let (m, shared) = (m.to_path_buf(), shared.clone());
            std::thread::spawn(move || {
                let mut f = fs::File::create(m.join(format!("writer{w}"))).unwrap();
                let s = fs::OpenOptions::new().write(true).open(&shared).unwrap();
                for i in 0..BLOCKS {
                    f.write_all(&pattern(w, i, BLK)).unwrap();
                    let off = ((i * 4 + w as usize) * 4096) as u64;
                    s.write_all_at(&pattern(w, i, 4096), off).unwrap();
                }
                f.sync_all().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    for w in 0..4u8 {
        let data = fs::read(m.join(format!("writer{w}"))).unwrap();
        assert_eq!(data.len(), BLOCKS * BLK);
        for (i, chunk) in data.chunks(BLK).enumerate() {
            assert!(chunk == pattern(w, i, BLK), "writer{w} block {i} differs");
        }
    }
    let s = fs::read(&shared).unwrap();
    assert_eq!(s.len(), BLOCKS * 4 * 4096);
    for (k, chunk) in s.chunks(4096).enumerate() {
        let (i, w) = (k / 4, (k % 4) as u8);
        assert!(chunk == pattern(w, i, 4096), "shared block {k} differs");
    }
}

/// The operation suite every read-write file system passes (`posix`:
/// links, symlinks, modes, xattrs too).
fn file_operations(m: &Path, posix: bool) {
    // create / write / read / append / seek.
    let a = m.join("a.txt");
    fs::write(&a, b"hello, world\n").unwrap();
    assert_eq!(fs::read(&a).unwrap(), b"hello, world\n");
    let mut f = fs::OpenOptions::new().append(true).open(&a).unwrap();
    f.write_all(b"more\n").unwrap();
    drop(f);
    let mut f = fs::File::open(&a).unwrap();
    f.seek(SeekFrom::Start(7)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "world\nmore\n");
    // An empty file and a file of a few MB.
    fs::write(m.join("empty"), b"").unwrap();
    assert_eq!(fs::metadata(m.join("empty")).unwrap().len(), 0);
    let big: Vec<u8> = (0..(3 << 20) + 123)
        .map(|i: u32| (i.wrapping_mul(2654435761u32) >> 13) as u8)
        .collect();
    fs::write(m.join("big"), &big).unwrap();
    assert!(fs::read(m.join("big")).unwrap() == big);

    // mkdir / nested / rename across directories / rmdir.
    fs::create_dir_all(m.join("d1/d2/d3")).unwrap();
    fs::rename(&a, m.join("d1/d2/moved.txt")).unwrap();
    assert!(!a.exists());
    assert_eq!(
        fs::read(m.join("d1/d2/moved.txt")).unwrap(),
        b"hello, world\nmore\n"
    );
    fs::rename(m.join("d1/d2"), m.join("d1/renamed")).unwrap();
    assert!(m.join("d1/renamed/moved.txt").exists());
    assert!(
        fs::remove_dir(m.join("d1/renamed")).is_err(),
        "non-empty rmdir"
    );
    fs::remove_dir(m.join("d1/renamed/d3")).unwrap();
    // rename replacing a file.
    fs::write(m.join("r1"), b"one").unwrap();
    fs::write(m.join("r2"), b"two").unwrap();
    fs::rename(m.join("r1"), m.join("r2")).unwrap();
    assert_eq!(fs::read(m.join("r2")).unwrap(), b"one");
    // readdir of a directory with many entries.
    fs::create_dir(m.join("many")).unwrap();
    for i in 0..300 {
        fs::write(m.join(format!("many/file-{i:03}")), format!("{i}")).unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(m.join("many"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 300);
    assert_eq!(names[0], "file-000");
    assert_eq!(fs::read_to_string(m.join("many/file-299")).unwrap(), "299");

    // truncate down and up.
    let t = m.join("trunc");
    fs::write(&t, vec![7u8; 10_000]).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&t).unwrap();
    f.set_len(100).unwrap();
    drop(f);
    assert_eq!(fs::read(&t).unwrap(), vec![7u8; 100]);
    run("truncate", &["-s", "5000", t.to_str().unwrap()]);
    let d = fs::read(&t).unwrap();
    assert_eq!(d.len(), 5000);
    assert!(d[100..].iter().all(|&b| b == 0));

    // unlink, and an unlinked file still open.
    let u = m.join("unlinked");
    fs::write(&u, b"still here").unwrap();
    let mut f = fs::File::open(&u).unwrap();
    fs::remove_file(&u).unwrap();
    assert!(!u.exists());
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "still here");

    // statfs.
    let sv = statvfs(m);
    assert!(sv.f_blocks > 0 && sv.f_bfree > 0 && sv.f_bfree <= sv.f_blocks);
    assert!(sv.f_namemax >= 255);

    if posix {
        // hard link.
        let h = m.join("d1/renamed/moved.txt");
        fs::hard_link(&h, m.join("hard")).unwrap();
        let (m1, m2) = (
            fs::metadata(&h).unwrap(),
            fs::metadata(m.join("hard")).unwrap(),
        );
        assert_eq!(m1.ino(), m2.ino());
        assert_eq!(m2.nlink(), 2);
        // symlink / readlink.
        std::os::unix::fs::symlink("d1/renamed/moved.txt", m.join("sym")).unwrap();
        assert_eq!(
            fs::read_link(m.join("sym")).unwrap(),
            Path::new("d1/renamed/moved.txt")
        );
        assert_eq!(fs::read(m.join("sym")).unwrap(), b"hello, world\nmore\n");
        assert!(fs::symlink_metadata(m.join("sym"))
            .unwrap()
            .file_type()
            .is_symlink());
        // chmod / chown / utimens.
        fs::set_permissions(m.join("hard"), fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(fs::metadata(&h).unwrap().mode() & 0o7777, 0o640);
        std::os::unix::fs::chown(m.join("hard"), Some(1234), Some(567)).unwrap();
        let md = fs::metadata(&h).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 567));
        run(
            "touch",
            &[
                "-d",
                "2001-02-03 04:05:06 UTC",
                m.join("hard").to_str().unwrap(),
            ],
        );
        assert_eq!(fs::metadata(&h).unwrap().mtime(), 981_173_106);
        // odd names.
        let odd = m.join("sp ace, ü, \u{1F600}, 'q\"");
        fs::write(&odd, b"odd").unwrap();
        assert_eq!(fs::read(&odd).unwrap(), b"odd");
        // FIFO via mknod.
        run("mkfifo", &[m.join("fifo").to_str().unwrap()]);
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(m.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        // xattrs.
        let x = m.join("r2");
        set_xattr(&x, "user.color", b"blue").unwrap();
        set_xattr(&x, "user.empty", b"").unwrap();
        assert_eq!(get_xattr(&x, "user.color").unwrap(), b"blue");
        let mut names = list_xattr(&x);
        names.sort();
        assert_eq!(names, ["user.color", "user.empty"]);
        remove_xattr(&x, "user.color").unwrap();
        assert_eq!(
            get_xattr(&x, "user.color").unwrap_err().raw_os_error(),
            Some(libc::ENODATA)
        );
        // fallocate.
        let fa = fs::File::create(m.join("falloc")).unwrap();
        run(
            "fallocate",
            &["-l", "1M", m.join("falloc").to_str().unwrap()],
        );
        assert_eq!(fa.metadata().unwrap().len(), 1 << 20);
    }
    // fsync of a file and of a directory.
    fs::File::open(m.join("r2")).unwrap().sync_all().unwrap();
    fs::File::open(m).unwrap().sync_all().unwrap();
}

/// What the suite left, read back after a remount (read-only).
fn check_after_remount(m: &Path, posix: bool) {
    assert_eq!(fs::read(m.join("r2")).unwrap(), b"one");
    assert_eq!(
        fs::read(m.join("d1/renamed/moved.txt")).unwrap(),
        b"hello, world\nmore\n"
    );
    assert_eq!(fs::read_dir(m.join("many")).unwrap().count(), 300);
    assert_eq!(fs::metadata(m.join("big")).unwrap().len(), (3 << 20) + 123);
    for w in 0..4u8 {
        let data = fs::read(m.join(format!("writer{w}"))).unwrap();
        assert!(data[..4096] == pattern(w, 0, 4096));
    }
    if posix {
        assert_eq!(fs::metadata(m.join("hard")).unwrap().nlink(), 2);
        assert_eq!(
            fs::read_link(m.join("sym")).unwrap(),
            Path::new("d1/renamed/moved.txt")
        );
        assert_eq!(get_xattr(&m.join("r2"), "user.empty").unwrap(), b"");
    }
    // Read-only: changes refused.
    let e = fs::write(m.join("new"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
}

fn suite_for(fstype: &str, mb: u64, posix: bool) {
    let s = Scratch::new(&format!("lklfuse-{fstype}"));
    let img = s.path("fs.img");
    make_image(&img, fstype, mb);
    let mnt = s.path("mnt");
    let fuse = FuseMount::start(&img, &mnt, &format!("type={fstype}"));
    file_operations(&fuse.dir, posix);
    concurrent_writers(&fuse.dir);
    fuse.unmount();
    fsck_clean(&img, fstype);
    let fuse = FuseMount::start(&img, &mnt, &format!("type={fstype},ro"));
    check_after_remount(&fuse.dir, posix);
    fuse.unmount();
    fsck_clean(&img, fstype);
}

#[testkit::needs(mkfs_ext4, fuse)]
#[test]
fn ext4_suite_then_fsck() {
    suite_for("ext4", 256, true);
}

#[testkit::needs(mkfs_vfat, fuse)]
#[test]
fn vfat_suite_then_fsck() {
    suite_for("vfat", 128, false);
}

#[testkit::needs(mkfs_xfs, fuse)]
#[test]
fn xfs_suite_then_fsck() {
    suite_for("xfs", 320, true);
}

#[testkit::needs(mkfs_btrfs, fuse)]
#[test]
fn btrfs_suite_then_fsck() {
    suite_for("btrfs", 256, true);
}

#[testkit::needs(mkfs_ext4, fuse)]
#[test]
fn sigterm_unmounts_and_flushes() {
    let s = Scratch::new("lklfuse-sigterm");
    let img = s.path("fs.img");
    make_image(&img, "ext4", 64);
    let mut fuse = FuseMount::start(&img, &s.path("mnt"), "type=ext4");
    fs::write(fuse.dir.join("kept"), b"written before SIGTERM").unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(fuse.child.id() as i32, libc::SIGTERM) };
    fuse.wait_ok();
    fsck_clean(&img, "ext4");
    let out = run("debugfs", &["-R", "cat /kept", img.to_str().unwrap()]);
    assert!(out.contains("written before SIGTERM"), "{out}");
}

#[testkit::needs(mkfs_ext4, fuse)]
#[test]
fn background_mode_returns_once_mounted() {
    let s = Scratch::new("lklfuse-bg");
    let img = s.path("fs.img");
    make_image(&img, "ext4", 64);
    let mnt = s.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let st = Command::new(LKLFUSE)
        .arg(&img)
        .arg(&mnt)
        .args(["-o", "type=ext4"])
        .status()
        .unwrap();
    assert!(st.success());
    let mnt = mnt.canonicalize().unwrap();
    assert!(is_mounted(&mnt), "not mounted when lklfuse returned");
    fs::write(mnt.join("f"), b"bg").unwrap();
    run("fusermount3", &["-u", mnt.to_str().unwrap()]);
    // The server halts its kernel and syncs: wait until no process has
    // the image open, then check it.
    let img_str = img.to_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && image_in_use(&img_str) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!image_in_use(&img_str), "server still running");
    fsck_clean(&img, "ext4");
}

/// True if a process still has `path` open.
fn image_in_use(path: &str) -> bool {
    let Ok(procs) = fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        fs::read_dir(p.path().join("fd"))
            .map(|fds| {
                fds.flatten()
                    .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == Path::new(path)))
            })
            .unwrap_or(false)
    })
}

fn lklfuse_fails(args: &[&str], want: &str) {
    testkit::refuses(LKLFUSE, args, want);
}

#[testkit::needs(mkfs_vfat)]
#[test]
fn errors_are_one_line() {
    let s = Scratch::new("lklfuse-errors");
    let mnt = s.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    let out = Command::new(LKLFUSE).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("type=FSTYPE"));
    lklfuse_fails(
        &["/nonexistent.img", m, "-f", "-o", "type=ext4"],
        "nonexistent.img",
    );
    lklfuse_fails(&["x.img", m], "type=");
    let img = s.path("fat.img");
    make_image(&img, "vfat", 32);
    let i = img.to_str().unwrap();
    lklfuse_fails(&[i, m, "-f", "-o", "type=ext4"], "not a ext4 file system");
    lklfuse_fails(&[i, m, "-o", "type=ext4"], "not a ext4 file system");
    lklfuse_fails(&[i, m, "-f", "-o", "type=nosuchfs"], "nosuchfs");
    lklfuse_fails(&[i, m, "-f", "-o", "type=vfat,part=3"], "partition 3");
    lklfuse_fails(
        &[i, "/nonexistent-dir", "-f", "-o", "type=vfat"],
        "mount point",
    );
    assert!(!is_mounted(&mnt.canonicalize().unwrap()));
}

/// LKL's lklfuse options: `log=FILE` gets the kernel's messages, `part=0`
/// is the whole disk, `-s` serves on one thread, `-V` prints the version.
#[testkit::needs(mkfs_ext4, fuse)]
#[test]
fn lkl_options_log_part0_version() {
    let out = Command::new(LKLFUSE).arg("-V").output().unwrap();
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(v.starts_with("lklfuse version "), "{v}");
    let out = Command::new(LKLFUSE).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), v);
    let s = Scratch::new("lklfuse-lkl-options");
    let img = s.path("fs.img");
    make_image(&img, "ext4", 64);
    let log = s.path("kernel.log");
    let opts = format!("type=ext4,part=0,log={}", log.display());
    let mnt = s.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    // In the background (returns once mounted), with -s.
    let st = Command::new(LKLFUSE)
        .arg(&img)
        .arg(&mnt)
        .args(["-s", "-o", &opts])
        .status()
        .unwrap();
    assert!(st.success());
    let mnt = mnt.canonicalize().unwrap();
    assert!(is_mounted(&mnt), "not mounted when lklfuse returned");
    fs::write(mnt.join("f"), b"through part=0").unwrap();
    run("fusermount3", &["-u", mnt.to_str().unwrap()]);
    let img_str = img.to_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && image_in_use(&img_str) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!image_in_use(&img_str), "server still running");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("Linux version"), "log: {text}");
    assert!(text.contains("EXT4-fs"), "log: {text}");
    let out = run("debugfs", &["-R", "cat /f", img.to_str().unwrap()]);
    assert!(out.contains("through part=0"), "{out}");
    fsck_clean(&img, "ext4");
}

/// Runs `script` with `sh -c` as uid/gid 65534 (no supplementary groups);
/// Err holds its stderr.
fn as_nobody(script: &str) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let out = Command::new("sh")
        .args(["-c", script])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Callers other than root get the permissions Linux gives them, whoever
/// checks (`permissions=kernel`: our kernel, each request running as its
/// caller; `permissions=host`: the host's `default_permissions`); a write
/// by someone who may write but does not own the file (its times kept by
/// the host's writeback cache) closes cleanly; new files belong to their
/// creator, with a set-group-ID directory's group.
fn permissions_as(who: &str) {
    let s = Scratch::new(&format!("lklfuse-perm-{who}"));
    let tree = s.path("tree");
    for d in ["open", "closed", "sticky", "sgid", "listable"] {
        fs::create_dir_all(tree.join(d)).unwrap();
    }
    let put = |name: &str, data: &str, mode: u32| {
        fs::write(tree.join(name), data).unwrap();
        fs::set_permissions(tree.join(name), fs::Permissions::from_mode(mode)).unwrap();
    };
    put("secret", "secret\n", 0o600);
    put("pub", "pub\n", 0o644);
    put("sticky/roots", "r\n", 0o666);
    put("listable/name", "n\n", 0o644);
    for (d, mode) in [
        ("open", 0o777),
        ("closed", 0o755),
        ("sticky", 0o1777),
        ("listable", 0o744),
    ] {
        fs::set_permissions(tree.join(d), fs::Permissions::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::chown(tree.join("sgid"), None, Some(123)).unwrap();
    fs::set_permissions(tree.join("sgid"), fs::Permissions::from_mode(0o2777)).unwrap();
    let img = s.path("fs.img");
    fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-d",
            tree.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    let fuse = FuseMount::start(
        &img,
        &s.path("mnt"),
        &format!("type=ext4,allow_other,permissions={who}"),
    );
    let m = fuse.dir.to_str().unwrap().to_owned();
    let refused = |script: &str| {
        let e = as_nobody(&script.replace("M/", &format!("{m}/"))).expect_err(script);
        assert!(
            e.contains("denied") || e.contains("not permitted"),
            "{who}: {script}: {e}"
        );
    };
    let allowed = |script: &str| {
        as_nobody(&script.replace("M/", &format!("{m}/")))
            .unwrap_or_else(|e| panic!("{who}: {script}: {e}"));
    };
    let ids = |name: &str| {
        let md = fs::metadata(fuse.dir.join(name)).unwrap();
        (md.uid(), md.gid())
    };
    refused("cat M/secret");
    allowed("cat M/pub");
    refused("echo x >> M/pub");
    refused("chmod 777 M/pub");
    refused("mkdir M/closed/x");
    refused("rm M/sticky/roots");
    refused("touch -d 2000-01-01 M/sticky/roots");
    allowed("touch M/sticky/roots");
    allowed("echo more >> M/sticky/roots");
    allowed("exec 3<>M/sticky/roots && echo over >&3 && exec 3>&-");
    allowed("echo new > M/open/mine && mkdir M/open/dir");
    assert_eq!(ids("open/mine"), (65534, 65534));
    assert_eq!(ids("open/dir"), (65534, 65534));
    allowed("ln M/open/mine M/open/hard && ln -s mine M/open/sym");
    allowed("mv M/open/hard M/open/hard2 && rm M/open/hard2 M/open/sym");
    // Readable but not searchable: the names, not the files.
    allowed("ls M/listable | grep -qx name");
    refused("cat M/listable/name");
    allowed("echo new > M/sgid/f");
    assert_eq!(ids("sgid/f"), (65534, 123));
    allowed("chmod 4755 M/open/mine");
    // A file created write-only (`create_direct`: its writes bypass the
    // host's cache) loses set-user-ID when its owner writes it, too.
    allowed("exec 3>M/open/su && chmod 4755 M/open/su && echo x >&3 && exec 3>&-");
    let mode = fs::metadata(fuse.dir.join("open/su")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o755, "{who}: {mode:o}");
    // Root still may do anything (a thread that served nobody serves root).
    assert_eq!(fs::read(fuse.dir.join("secret")).unwrap(), b"secret\n");
    std::os::unix::fs::chown(fuse.dir.join("pub"), Some(1234), Some(567)).unwrap();
    assert_eq!(ids("pub"), (1234, 567));
    // A write by someone else clears set-user-ID.
    fs::set_permissions(
        fuse.dir.join("sticky/roots"),
        fs::Permissions::from_mode(0o4666),
    )
    .unwrap();
    allowed("echo w >> M/sticky/roots");
    let mode = fs::metadata(fuse.dir.join("sticky/roots")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o666, "{who}: {mode:o}");
    fuse.unmount();
    fsck_clean(&img, "ext4");
}

#[testkit::needs(root, mkfs_ext4, fuse)]
#[test]
fn permissions_checked_by_the_kernel() {
    permissions_as("kernel");
}

#[testkit::needs(root, mkfs_ext4, fuse)]
#[test]
fn permissions_checked_by_the_host() {
    permissions_as("host");
}

/// A shared, writable map of `len` bytes of `f`.
fn map_shared(f: &fs::File, len: usize) -> &'static mut [u8] {
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh mapping of an open file; unmapped by `unmap` before
    // the test ends, and nothing else aliases it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        std::slice::from_raw_parts_mut(p.cast::<u8>(), len)
    }
}

fn msync_and_unmap(map: &'static mut [u8]) {
    // SAFETY: the mapping made by `map_shared`, not used after this.
    unsafe {
        let p = map.as_mut_ptr().cast::<libc::c_void>();
        assert_eq!(libc::msync(p, map.len(), libc::MS_SYNC), 0);
        assert_eq!(libc::munmap(p, map.len()), 0);
    }
}

/// Files created write-only go around the host's page cache
/// (`create_direct`, the default) and stay coherent with the file's other,
/// cached, handles: reads, a shared map, appends; a file created read-write
/// and mapped shared works as before; the host shows the time of the last
/// write once the file is closed. The same with `create_direct=0` and
/// without the writeback cache.
#[testkit::needs(mkfs_ext4, fuse)]
#[test]
fn write_only_creates_stay_coherent() {
    let s = Scratch::new("lklfuse-create-direct");
    let img = s.path("fs.img");
    make_image(&img, "ext4", 64);
    for (i, opts) in [
        "type=ext4",
        "type=ext4,create_direct=0",
        "type=ext4,nowriteback",
    ]
    .into_iter()
    .enumerate()
    {
        let fuse = FuseMount::start(&img, &s.path("mnt"), opts);
        let d = fuse.dir.join(format!("d{i}"));
        fs::create_dir(&d).unwrap();

        // Written through the write-only handle, read and changed through a
        // shared map of another.
        let w = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(d.join("mapped"))
            .unwrap();
        w.write_all_at(&[b'a'; 8192], 0).unwrap();
        let rw = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(d.join("mapped"))
            .unwrap();
        let map = map_shared(&rw, 8192);
        assert!(map.iter().all(|&b| b == b'a'), "{opts}");
        w.write_all_at(b"bbbb", 100).unwrap();
        assert_eq!(&map[100..104], b"bbbb", "{opts}: the map sees the write");
        map[5000..5004].copy_from_slice(b"cccc");
        w.write_all_at(b"dddd", 5002).unwrap();
        assert_eq!(&map[5000..5006], b"ccdddd", "{opts}");
        msync_and_unmap(map);
        drop((w, rw));
        let data = fs::read(d.join("mapped")).unwrap();
        assert_eq!(data.len(), 8192, "{opts}");
        assert_eq!(&data[98..106], b"aabbbbaa", "{opts}");
        assert_eq!(&data[4998..5008], b"aaccddddaa", "{opts}");

        // Created read-write, mapped shared, written through the map.
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(d.join("rw"))
            .unwrap();
        f.set_len(4096).unwrap();
        let map = map_shared(&f, 4096);
        map[..5].copy_from_slice(b"hello");
        msync_and_unmap(map);
        drop(f);
        let data = fs::read(d.join("rw")).unwrap();
        assert_eq!(&data[..6], b"hello\0", "{opts}");

        // Appends through a created handle and a cached one interleave.
        let mut a = fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(d.join("log"))
            .unwrap();
        a.write_all(b"one\n").unwrap();
        let mut b = fs::OpenOptions::new()
            .append(true)
            .open(d.join("log"))
            .unwrap();
        b.write_all(b"two\n").unwrap();
        a.write_all(b"three\n").unwrap();
        drop((a, b));
        assert_eq!(
            fs::read(d.join("log")).unwrap(),
            b"one\ntwo\nthree\n",
            "{opts}"
        );

        // The time of the last write, once closed.
        let mut f = fs::File::create(d.join("slow")).unwrap();
        f.write_all(b"first").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(b" last").unwrap();
        let written = std::time::SystemTime::now();
        drop(f);
        // The host forgets its stale copy shortly after close (RELEASE
        // is sent after close returns).
        let mut tries = 0;
        let mtime = loop {
            let mtime = fs::metadata(d.join("slow")).unwrap().modified().unwrap();
            tries += 1;
            if written.duration_since(mtime).unwrap_or_default() < Duration::from_millis(100)
                || tries == 50
            {
                break mtime;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let late = written.duration_since(mtime).unwrap_or_default();
        assert!(
            late < Duration::from_millis(100),
            "{opts}: mtime {late:?} early"
        );
        fuse.unmount();
        fsck_clean(&img, "ext4");
    }
}
