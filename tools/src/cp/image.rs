//! The image, mounted in the kernel, as a [`World`].

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use lkl::syscall::{self as sys, abi, Errno};

use super::world::{errno_io, kind_of, Kind, Meta, Sink, Source, World};
use super::MOUNT_POINT;

/// The image, as the kernel sees it under [`MOUNT_POINT`].
pub(super) struct Image {
    pub(super) name: String,
    pub(super) selinux: Option<String>,
}

impl Image {
    fn k(&self, p: &Path) -> PathBuf {
        let rel = p.strip_prefix("/").unwrap_or(p);
        Path::new(MOUNT_POINT).join(rel)
    }
}

struct KernelFile(i32);

impl Drop for KernelFile {
    fn drop(&mut self) {
        if self.0 >= 0 {
            let _ = sys::close(self.0);
        }
    }
}

impl Source for KernelFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(self.0, buf).map_err(errno_io)
    }
}

impl Sink for KernelFile {
    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match sys::write(self.0, buf) {
                Ok(0) => return Err(errno_io(Errno::ENOSPC)),
                Ok(n) => buf = &buf[n..],
                Err(Errno::EINTR) => {}
                Err(e) => return Err(errno_io(e)),
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let fd = std::mem::replace(&mut self.0, -1);
        sys::close(fd).map_err(errno_io)
    }
}

impl World for Image {
    fn show(&self, p: &Path) -> String {
        format!("{}:{}", self.name, p.display())
    }

    fn lstat(&self, p: &Path) -> io::Result<Meta> {
        let st = sys::fstatat(
            abi::AT_FDCWD,
            self.k(p).as_os_str(),
            abi::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno_io)?;
        Ok(Meta {
            kind: kind_of(st.st_mode),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            atime: (st.st_atime, st.st_atime_nsec as i64),
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
        })
    }

    fn list(&self, p: &Path) -> io::Result<Vec<OsString>> {
        let fd = sys::openat(
            abi::AT_FDCWD,
            self.k(p).as_os_str(),
            abi::O_RDONLY | abi::O_DIRECTORY | abi::O_CLOEXEC,
            0,
        )
        .map_err(errno_io)?;
        let fd = KernelFile(fd);
        let mut names = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = sys::getdents64(fd.0, &mut buf).map_err(errno_io)?;
            if n == 0 {
                break;
            }
            parse_dirents(&buf[..n], &mut names);
        }
        Ok(names)
    }

    fn readlink(&self, p: &Path) -> io::Result<PathBuf> {
        sys::readlink(self.k(p).as_os_str()).map_err(errno_io)
    }

    fn open(&self, p: &Path) -> io::Result<Box<dyn Source>> {
        let fd = sys::openat(
            abi::AT_FDCWD,
            self.k(p).as_os_str(),
            abi::O_RDONLY | abi::O_CLOEXEC | abi::O_NOFOLLOW,
            0,
        )
        .map_err(errno_io)?;
        Ok(Box::new(KernelFile(fd)))
    }

    fn create(&self, p: &Path) -> io::Result<Box<dyn Sink>> {
        let fd = sys::openat(
            abi::AT_FDCWD,
            self.k(p).as_os_str(),
            abi::O_WRONLY | abi::O_CREAT | abi::O_TRUNC | abi::O_CLOEXEC | abi::O_NOFOLLOW,
            0o600,
        )
        .map_err(errno_io)?;
        Ok(Box::new(KernelFile(fd)))
    }

    fn mkdir(&self, p: &Path) -> io::Result<()> {
        sys::mkdirat(abi::AT_FDCWD, self.k(p).as_os_str(), 0o700).map_err(errno_io)
    }

    fn symlink(&self, target: &Path, p: &Path) -> io::Result<()> {
        sys::symlink(target.as_os_str(), self.k(p).as_os_str()).map_err(errno_io)
    }

    fn mknod(&self, p: &Path, mode: u32, rdev: u64) -> io::Result<()> {
        sys::mknodat(abi::AT_FDCWD, self.k(p).as_os_str(), mode, rdev).map_err(errno_io)
    }

    fn unlink(&self, p: &Path) -> io::Result<()> {
        sys::unlinkat(abi::AT_FDCWD, self.k(p).as_os_str(), 0).map_err(errno_io)
    }

    fn set_attrs(&self, p: &Path, m: &Meta) -> io::Result<()> {
        let k = self.k(p);
        if let Some(ctx) = &self.selinux {
            let mut v = ctx.as_bytes().to_vec();
            v.push(0);
            sys::lsetxattr(k.as_os_str(), "security.selinux", &v, 0).map_err(errno_io)?;
        }
        // File systems without owners (vfat) refuse chown with EPERM.
        match sys::lchown(k.as_os_str(), Some(m.uid), Some(m.gid)) {
            Err(Errno::EPERM) | Ok(()) => {}
            Err(e) => return Err(errno_io(e)),
        }
        if m.kind != Kind::Link {
            // vfat keeps only some mode bits and refuses the rest.
            match sys::fchmodat(abi::AT_FDCWD, k.as_os_str(), m.mode & 0o7777, 0) {
                Err(Errno::EPERM) | Ok(()) => {}
                Err(e) => return Err(errno_io(e)),
            }
        }
        let ts = [
            abi::Timespec {
                tv_sec: m.atime.0,
                tv_nsec: m.atime.1,
            },
            abi::Timespec {
                tv_sec: m.mtime.0,
                tv_nsec: m.mtime.1,
            },
        ];
        sys::utimensat(
            abi::AT_FDCWD,
            k.as_os_str(),
            Some(ts),
            abi::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno_io)
    }
}

/// Appends the names in a `getdents64` buffer (but `.` and `..`).
fn parse_dirents(buf: &[u8], out: &mut Vec<OsString>) {
    let mut off = 0;
    while off + 19 < buf.len() {
        let reclen = usize::from(u16::from_ne_bytes([buf[off + 16], buf[off + 17]]));
        if reclen < 20 || off + reclen > buf.len() {
            break;
        }
        let name = &buf[off + 19..off + reclen];
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        let name = &name[..end];
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name.to_vec()));
        }
        off += reclen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirents() {
        let mut buf = Vec::new();
        for name in [&b"."[..], b"..", b"hello", "é x".as_bytes()] {
            let reclen = (19 + name.len() + 1).next_multiple_of(8);
            let mut rec = vec![0u8; reclen];
            rec[16..18].copy_from_slice(&(reclen as u16).to_ne_bytes());
            rec[19..19 + name.len()].copy_from_slice(name);
            buf.extend(rec);
        }
        let mut out = Vec::new();
        parse_dirents(&buf, &mut out);
        assert_eq!(out, vec![OsString::from("hello"), OsString::from("é x")]);
    }
}
