//! File-system images made with the host's tools, a scratch directory per
//! test, and lklfuse mounts driven from tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lkl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a command; panics with its output if it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
    text
}

/// Makes a sparse image of `mb` MiB with `mkfs.<fstype>`.
pub fn make_image(path: &Path, fstype: &str, mb: u64) {
    let f = std::fs::File::create(path).expect("create image");
    f.set_len(mb << 20).expect("size image");
    drop(f);
    let p = path.to_str().expect("utf-8 path");
    match fstype {
        "ext4" => run("mkfs.ext4", &["-q", "-F", p]),
        "vfat" => run("mkfs.vfat", &[p]),
        "xfs" => run("mkfs.xfs", &["-q", "-f", p]),
        "btrfs" => run("mkfs.btrfs", &["-q", "-f", p]),
        other => panic!("no mkfs for {other}"),
    };
}

/// The host's read-only check of an image; panics if it is not clean.
pub fn fsck_clean(path: &Path, fstype: &str) {
    let p = path.to_str().expect("utf-8 path");
    match fstype {
        "ext4" => run("e2fsck", &["-fn", p]),
        "vfat" => run("fsck.vfat", &["-n", p]),
        "xfs" => run("xfs_repair", &["-n", p]),
        "btrfs" => run("btrfs", &["check", "--readonly", p]),
        other => panic!("no fsck for {other}"),
    };
}

/// True if `dir` is a mount point right now.
pub fn is_mounted(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = dir.to_str().unwrap_or("");
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

/// `lklfuse`, built beside the test binary.
pub fn lklfuse() -> PathBuf {
    crate::workspace_bin("lklfuse")
}

/// A foreground lklfuse process and its mount.
pub struct FuseMount {
    pub child: Child,
    pub dir: PathBuf,
}

impl FuseMount {
    /// Starts `lklfuse IMAGE DIR -f -o OPTS` and waits for the mount.
    pub fn start(image: &Path, dir: &Path, opts: &str) -> FuseMount {
        std::fs::create_dir_all(dir).expect("mount dir");
        let dir = dir.canonicalize().expect("mount dir path");
        let mut child = Command::new(lklfuse())
            .arg(image)
            .arg(&dir)
            .args(["-f", "-o", opts])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn lklfuse");
        let start = Instant::now();
        while !is_mounted(&dir) {
            if let Some(status) = child.try_wait().expect("wait lklfuse") {
                panic!("lklfuse exited before mounting: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "lklfuse did not mount in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        FuseMount { child, dir }
    }

    /// `fusermount3 -u`, then waits for lklfuse to exit; panics unless it
    /// exits 0.
    pub fn unmount(mut self) {
        // Other tests of this process fork children that hold our open
        // descriptors for a moment (until their exec): EBUSY, try again.
        let dir = self.dir.to_str().expect("path").to_owned();
        for _ in 0..50 {
            let ok = Command::new("fusermount3")
                .args(["-u", &dir])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok || !is_mounted(&self.dir) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!is_mounted(&self.dir), "fusermount3 -u {dir} kept failing");
        self.wait_ok();
    }

    /// Waits for the process (up to 60 s); panics unless it exited 0.
    pub fn wait_ok(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait lklfuse") {
                assert!(status.success(), "lklfuse exited with {status}");
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "lklfuse still running 60 s after unmount"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!is_mounted(&self.dir), "still mounted after lklfuse exit");
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.dir)
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
