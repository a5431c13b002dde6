//! The disk API: images made by the host's mkfs, attached before and after
//! boot, found, mounted, written, unmounted; the host's fsck agrees.

use std::time::Duration;

use lkl::disk::{self, Disk, DiskError};
use lkl::syscall::{self as sys, abi};
use lkl::Errno;
use testkit::images::{fsck_clean, make_image, run, Scratch};
use testkit::{boot, in_child, read_kernel_file as read_file};

fn write_file(path: &str, data: &[u8]) -> Result<(), Errno> {
    let fd = sys::open(path, abi::O_CREAT | abi::O_WRONLY | abi::O_TRUNC, 0o644)?;
    let r = sys::write(fd, data);
    sys::close(fd)?;
    r.map(drop)
}

#[testkit::needs(mkfs_ext4, mkfs_vfat)]
#[test]
fn ext4_before_and_after_boot_ro_and_rw() {
    in_child(
        "ext4_before_and_after_boot_ro_and_rw",
        Duration::from_secs(120),
        || {
            let dir = Scratch::new("disk-api-ext4");
            let (rw, ro, vfat) = (dir.path("rw.img"), dir.path("ro.img"), dir.path("v.img"));
            make_image(&rw, "ext4", 32);
            make_image(&ro, "ext4", 32);
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
            make_image(&vfat, "vfat", 16);
            let v = Disk::attach(&vfat, false).unwrap();
            let e = v.mount(None, "ext4", "/mnt/x", "").unwrap_err();
            assert!(matches!(e, DiskError::WrongFsType { .. }), "{e}");
            assert!(e.to_string().contains("is not a ext4 file system"), "{e}");
            let e = v.mount(None, "nosuchfs", "/mnt/x", "").unwrap_err();
            assert!(matches!(e, DiskError::UnknownFsType(_)), "{e}");
            let e = v.mount(Some(1), "vfat", "/mnt/x", "").unwrap_err();
            assert!(matches!(e, DiskError::NoPartition { .. }), "{e}");
            let e = Disk::attach(dir.path("missing.img"), false).unwrap_err();
            assert!(e.to_string().contains("missing.img"), "{e}");
            v.mount(None, "vfat", "/mnt/v", "").unwrap();
            write_file("/mnt/v/a.txt", b"fat").unwrap();
            v.detach().unwrap();
            disk::unmount("/mnt/ro").unwrap();
            disk::halt(kernel).unwrap();
            fsck_clean(&rw, "ext4");
            fsck_clean(&ro, "ext4");
            fsck_clean(&vfat, "vfat");
            let dump = run("debugfs", &["-R", "stat /hello", rw.to_str().unwrap()]);
            assert!(dump.contains("Size: 3000000"), "{dump}");
        },
    );
}
