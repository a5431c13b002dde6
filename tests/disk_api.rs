//! The disk API: images made by the host's mkfs, attached before and after
//! boot, found, mounted, written, unmounted; the host's fsck agrees.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lkl::disk::{self, Disk, DiskError};
use lkl::syscall::{self as sys, abi};
use lkl::Errno;
use testkit::{boot, in_child};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lkl-disk-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
    text
}

fn mkimage(dir: &Path, name: &str, mb: u64, mkfs: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(mb << 20).unwrap();
    let mut args = mkfs[1..].to_vec();
    let ps = p.to_str().unwrap().to_owned();
    args.push(&ps);
    run(mkfs[0], &args);
    p
}

fn write_file(path: &str, data: &[u8]) -> Result<(), Errno> {
    let fd = sys::open(path, abi::O_CREAT | abi::O_WRONLY | abi::O_TRUNC, 0o644)?;
    let r = sys::write(fd, data);
    sys::close(fd)?;
    r.map(drop)
}

fn read_file(path: &str) -> Vec<u8> {
    let fd = sys::open(path, abi::O_RDONLY, 0).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = sys::read(fd, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    sys::close(fd).unwrap();
    out
}

#[testkit::needs(mkfs_ext4, mkfs_vfat)]
#[test]
fn ext4_before_and_after_boot_ro_and_rw() {
    in_child(
        "ext4_before_and_after_boot_ro_and_rw",
        Duration::from_secs(120),
        || {
            let dir = tmpdir("ext4");
            let rw = mkimage(&dir, "rw.img", 32, &["mkfs.ext4", "-q", "-F"]);
            let ro = mkimage(&dir, "ro.img", 32, &["mkfs.ext4", "-q", "-F"]);
            let before = Disk::attach(&rw, false).unwrap();
            let (kernel, console) = boot(64 << 20);
            let after = Disk::attach(&ro, true).unwrap();
            before
                .mount(None, "ext4", "/mnt/rw", "")
                .unwrap_or_else(|e| {
                    panic!("{e}\n{}", console.contents());
                });
            after.mount(None, "ext4", "/mnt/ro", "noatime").unwrap();
            let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
            write_file("/mnt/rw/hello", &data).unwrap();
            assert_eq!(read_file("/mnt/rw/hello"), data);
            assert_eq!(write_file("/mnt/ro/x", b"no"), Err(Errno::EROFS));
            assert!(sys::read_dir("/mnt/ro")
                .unwrap()
                .contains(&"lost+found".to_owned()));
            // Errors: wrong type, unknown type, no such partition.
            let vfat = mkimage(&dir, "v.img", 16, &["mkfs.vfat"]);
            let v = Disk::attach(&vfat, false).unwrap();
            let e = v.mount(None, "ext4", "/mnt/x", "").unwrap_err();
            assert!(matches!(e, DiskError::WrongFsType { .. }), "{e}");
            assert!(e.to_string().contains("is not a ext4 file system"), "{e}");
            let e = v.mount(None, "nosuchfs", "/mnt/x", "").unwrap_err();
            assert!(matches!(e, DiskError::UnknownFsType(_)), "{e}");
            let e = v.mount(Some(1), "vfat", "/mnt/x", "").unwrap_err();
            assert!(matches!(e, DiskError::NoPartition { .. }), "{e}");
            let e = Disk::attach(dir.join("missing.img"), false).unwrap_err();
            assert!(e.to_string().contains("missing.img"), "{e}");
            v.mount(None, "vfat", "/mnt/v", "").unwrap();
            write_file("/mnt/v/a.txt", b"fat").unwrap();
            v.detach().unwrap();
            disk::unmount("/mnt/ro").unwrap();
            disk::halt(kernel).unwrap();
            run("e2fsck", &["-fn", rw.to_str().unwrap()]);
            run("e2fsck", &["-fn", ro.to_str().unwrap()]);
            run("fsck.vfat", &["-n", vfat.to_str().unwrap()]);
            let dump = run("debugfs", &["-R", "stat /hello", rw.to_str().unwrap()]);
            assert!(dump.contains("Size: 3000000"), "{dump}");
            std::fs::remove_dir_all(&dir).unwrap();
        },
    );
}
