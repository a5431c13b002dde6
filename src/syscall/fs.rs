//! Files, directories, mounts, pipes.

use std::ffi::OsStr;

use super::abi::{self, Stat};
use super::{cpath, nr, ptr, ptr_mut, raw, Errno};

/// Opens `path` (relative to `dirfd`).
pub fn openat(dirfd: i32, path: impl AsRef<OsStr>, flags: i32, mode: u32) -> Result<i32, Errno> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated string alive for the call.
    unsafe {
        raw(
            nr::OPENAT,
            [
                dirfd as i64,
                ptr(c.as_ptr()),
                flags as i64,
                mode as i64,
                0,
                0,
            ],
        )
    }
    .map(|fd| fd as i32)
}

/// Opens `path` relative to the working directory.
pub fn open(path: &str, flags: i32, mode: u32) -> Result<i32, Errno> {
    openat(abi::AT_FDCWD, path, flags, mode)
}

/// `creat`: create or truncate for writing.
pub fn creat(path: &str, mode: u32) -> Result<i32, Errno> {
    open(path, abi::O_CREAT | abi::O_WRONLY | abi::O_TRUNC, mode)
}

pub fn close(fd: i32) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::CLOSE, [fd as i64, 0, 0, 0, 0, 0]) }.map(drop)
}

pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    unsafe {
        raw(
            nr::READ,
            [
                fd as i64,
                ptr_mut(buf.as_mut_ptr()),
                buf.len() as i64,
                0,
                0,
                0,
            ],
        )
    }
    .map(|n| n as usize)
}

pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`.
    unsafe {
        raw(
            nr::WRITE,
            [fd as i64, ptr(buf.as_ptr()), buf.len() as i64, 0, 0, 0],
        )
    }
    .map(|n| n as usize)
}

pub fn pread(fd: i32, buf: &mut [u8], offset: i64) -> Result<usize, Errno> {
    // SAFETY: as `read`.
    unsafe {
        raw(
            nr::PREAD64,
            [
                fd as i64,
                ptr_mut(buf.as_mut_ptr()),
                buf.len() as i64,
                offset,
                0,
                0,
            ],
        )
    }
    .map(|n| n as usize)
}

pub fn pwrite(fd: i32, buf: &[u8], offset: i64) -> Result<usize, Errno> {
    // SAFETY: as `write`.
    unsafe {
        raw(
            nr::PWRITE64,
            [fd as i64, ptr(buf.as_ptr()), buf.len() as i64, offset, 0, 0],
        )
    }
    .map(|n| n as usize)
}

pub fn lseek(fd: i32, offset: i64, whence: i32) -> Result<i64, Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::LSEEK, [fd as i64, offset, whence as i64, 0, 0, 0]) }
}

pub fn fstat(fd: i32) -> Result<Stat, Errno> {
    let mut st = Stat::default();
    // SAFETY: `st` is a generic-ABI struct stat the kernel fills.
    unsafe { raw(nr::FSTAT, [fd as i64, ptr_mut(&mut st), 0, 0, 0, 0]) }?;
    Ok(st)
}

pub fn fstatat(dirfd: i32, path: impl AsRef<OsStr>, flags: i32) -> Result<Stat, Errno> {
    let c = cpath(path)?;
    let mut st = Stat::default();
    // SAFETY: a NUL-terminated path and a struct stat to fill.
    unsafe {
        raw(
            nr::NEWFSTATAT,
            [
                dirfd as i64,
                ptr(c.as_ptr()),
                ptr_mut(&mut st),
                flags as i64,
                0,
                0,
            ],
        )
    }?;
    Ok(st)
}

pub fn stat(path: &str) -> Result<Stat, Errno> {
    fstatat(abi::AT_FDCWD, path, 0)
}

pub fn mkdir(path: &str, mode: u32) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path.
    unsafe {
        raw(
            nr::MKDIRAT,
            [abi::AT_FDCWD as i64, ptr(c.as_ptr()), mode as i64, 0, 0, 0],
        )
    }
    .map(drop)
}

pub fn rmdir(path: &str) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path.
    unsafe {
        raw(
            nr::UNLINKAT,
            [
                abi::AT_FDCWD as i64,
                ptr(c.as_ptr()),
                abi::AT_REMOVEDIR as i64,
                0,
                0,
                0,
            ],
        )
    }
    .map(drop)
}

pub fn unlink(path: &str) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path.
    unsafe {
        raw(
            nr::UNLINKAT,
            [abi::AT_FDCWD as i64, ptr(c.as_ptr()), 0, 0, 0, 0],
        )
    }
    .map(drop)
}

pub fn mknod(path: &str, mode: u32, dev: u64) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path.
    unsafe {
        raw(
            nr::MKNODAT,
            [
                abi::AT_FDCWD as i64,
                ptr(c.as_ptr()),
                mode as i64,
                dev as i64,
                0,
                0,
            ],
        )
    }
    .map(drop)
}

pub fn chdir(path: &str) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path.
    unsafe { raw(nr::CHDIR, [ptr(c.as_ptr()), 0, 0, 0, 0, 0]) }.map(drop)
}

/// Sets the file-mode creation mask; returns the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::UMASK, [mask as i64, 0, 0, 0, 0, 0]) }
        .map(|m| m as u32)
        .unwrap_or(0)
}

pub fn fsync(fd: i32) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::FSYNC, [fd as i64, 0, 0, 0, 0, 0]) }.map(drop)
}

pub fn sync() -> Result<(), Errno> {
    // SAFETY: no arguments.
    unsafe { raw(nr::SYNC, [0; 6]) }.map(drop)
}

/// Reads directory entries into `buf` (linux_dirent64 records).
pub fn getdents64(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `buf.len()` bytes.
    unsafe {
        raw(
            nr::GETDENTS64,
            [
                fd as i64,
                ptr_mut(buf.as_mut_ptr()),
                buf.len() as i64,
                0,
                0,
                0,
            ],
        )
    }
    .map(|n| n as usize)
}

/// The names in a buffer filled by `getdents64`.
pub fn dirent_names(buf: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut off = 0;
    let hdr = std::mem::size_of::<abi::Dirent64Header>() - 1; // name starts at offset 19
    while off + hdr < buf.len() {
        let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
        if reclen == 0 || off + reclen > buf.len() {
            break;
        }
        names.push(abi::cstr_field(&buf[off + 19..off + reclen]).to_string());
        off += reclen;
    }
    names
}

/// Lists a directory.
pub fn read_dir(path: &str) -> Result<Vec<String>, Errno> {
    let fd = open(path, abi::O_RDONLY | abi::O_DIRECTORY, 0)?;
    let mut names = Vec::new();
    let mut buf = vec![0u8; 8192];
    let result = loop {
        match getdents64(fd, &mut buf) {
            Ok(0) => break Ok(names),
            Ok(n) => names.extend(dirent_names(&buf[..n])),
            Err(e) => break Err(e),
        }
    };
    let _ = close(fd);
    result
}

pub fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: u64,
    data: Option<&str>,
) -> Result<(), Errno> {
    let (s, t, f) = (cpath(source)?, cpath(target)?, cpath(fstype)?);
    // The kernel copies a whole page of options (copy_mount_options, which
    // on real hardware stops at a fault); here that copy is a plain
    // memcpy, so the options live in a zero-padded page-sized buffer.
    let d = data
        .map(|d| {
            cpath(d).map(|c| {
                let mut page = c.into_bytes_with_nul();
                page.resize(page.len().max(4096), 0);
                page
            })
        })
        .transpose()?;
    let dp = d.as_ref().map_or(0, |d| ptr(d.as_ptr()));
    // SAFETY: NUL-terminated strings alive for the call.
    unsafe {
        raw(
            nr::MOUNT,
            [
                ptr(s.as_ptr()),
                ptr(t.as_ptr()),
                ptr(f.as_ptr()),
                flags as i64,
                dp,
                0,
            ],
        )
    }
    .map(drop)
}

pub fn umount(target: &str, flags: i32) -> Result<(), Errno> {
    let t = cpath(target)?;
    // SAFETY: a NUL-terminated path.
    unsafe { raw(nr::UMOUNT2, [ptr(t.as_ptr()), flags as i64, 0, 0, 0, 0]) }.map(drop)
}

/// `pipe2`: returns (read end, write end).
pub fn pipe2(flags: i32) -> Result<(i32, i32), Errno> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two ints.
    unsafe {
        raw(
            nr::PIPE2,
            [ptr_mut(fds.as_mut_ptr()), flags as i64, 0, 0, 0, 0],
        )
    }?;
    Ok((fds[0], fds[1]))
}

pub fn eventfd(initval: u32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::EVENTFD2, [initval as i64, flags as i64, 0, 0, 0, 0]) }.map(|fd| fd as i32)
}

pub fn dup3(oldfd: i32, newfd: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: no pointer arguments.
    unsafe {
        raw(
            nr::DUP3,
            [oldfd as i64, newfd as i64, flags as i64, 0, 0, 0],
        )
    }
    .map(|fd| fd as i32)
}

/// `fcntl` with an integer argument.
pub fn fcntl(fd: i32, cmd: i32, arg: i64) -> Result<i64, Errno> {
    // SAFETY: only integer-argument commands are allowed through here.
    unsafe { raw(nr::FCNTL, [fd as i64, cmd as i64, arg, 0, 0, 0]) }
}
