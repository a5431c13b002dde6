//! Helpers for the backends' unit tests.

#![forbid(unsafe_code)]

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::virtio::hostio::{Interest, PollSet, Readiness};
use crate::virtio::net::{NetBackend, FRAME_BUF_LEN};

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "lklbk-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits up to 5 s for `fd` to be readable (or hung up).
pub(crate) fn wait_readable(fd: RawFd) -> Readiness {
    let mut set = PollSet::new();
    set.add(fd, 0, Interest::READ);
    set.wait(Some(Duration::from_secs(5))).unwrap();
    let r = set.ready().next().map(|(_, r)| r).unwrap_or_default();
    r
}

/// Receives one frame from a backend, waiting up to 5 s.
pub(crate) fn recv_frame(b: &mut dyn NetBackend) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; FRAME_BUF_LEN];
    loop {
        match b.recv(&mut [IoSliceMut::new(&mut buf)]) {
            Ok(n) => return buf[..n].to_vec(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no frame within 5 s");
                wait_readable(b.as_raw_fd());
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Sends one frame through a backend, retrying for up to 5 s while full.
pub(crate) fn send_frame(b: &mut dyn NetBackend, frame: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match b.send(&[IoSlice::new(frame)]) {
            Ok(n) => return assert_eq!(n, frame.len()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "backend full for 5 s");
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("send: {e}"),
        }
    }
}

/// A recognisable test frame of `len` bytes.
pub(crate) fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}
