//! What both sides of a copy offer: a [`World`] (the host's file system,
//! or the image as the kernel sees it) with its open files.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use lkl::syscall::{abi, Errno};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    File,
    Dir,
    Link,
    /// Device node, FIFO or socket: made with mknod.
    Special,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Meta {
    pub(super) kind: Kind,
    /// Full st_mode (type and permission bits).
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) rdev: u64,
    pub(super) atime: (i64, i64),
    pub(super) mtime: (i64, i64),
}

pub(super) fn kind_of(mode: u32) -> Kind {
    match mode & abi::S_IFMT {
        abi::S_IFDIR => Kind::Dir,
        abi::S_IFREG => Kind::File,
        0o120000 => Kind::Link,
        _ => Kind::Special,
    }
}

/// An open file being read.
pub(super) trait Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// An open file being written; `finish` closes it and reports late errors.
pub(super) trait Sink {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A file system to copy from or to. Paths are absolute in that world.
pub(super) trait World {
    /// How a path is shown in messages.
    fn show(&self, p: &Path) -> String;
    fn lstat(&self, p: &Path) -> io::Result<Meta>;
    fn list(&self, p: &Path) -> io::Result<Vec<OsString>>;
    fn readlink(&self, p: &Path) -> io::Result<PathBuf>;
    fn open(&self, p: &Path) -> io::Result<Box<dyn Source>>;
    fn create(&self, p: &Path) -> io::Result<Box<dyn Sink>>;
    fn mkdir(&self, p: &Path) -> io::Result<()>;
    fn symlink(&self, target: &Path, p: &Path) -> io::Result<()>;
    fn mknod(&self, p: &Path, mode: u32, rdev: u64) -> io::Result<()>;
    fn unlink(&self, p: &Path) -> io::Result<()>;
    /// Owner, mode (not for links) and times, in that order.
    fn set_attrs(&self, p: &Path, m: &Meta) -> io::Result<()>;
}

pub(super) fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.0)
}
