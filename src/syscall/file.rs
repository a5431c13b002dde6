//! File operations beyond open/read/write: renames, links, symlinks, modes,
//! owners, times, sizes, space, file-system statistics, access checks,
//! extended attributes and `statx`.
//!
//! Paths are anything that is an `OsStr` (`&str`, `&Path`, `&OsStr`): Linux
//! names are bytes, and images carry names that are not UTF-8. `dirfd`
//! arguments take `abi::AT_FDCWD` or a kernel descriptor (an `O_PATH` one
//! too, with `abi::AT_EMPTY_PATH` and an empty path where the call allows).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use super::abi::{self, StatFs, Statx, Timespec};
use super::{cpath, nr, ptr, ptr_mut, raw, Errno};

/// Creates a directory relative to `dirfd`.
pub fn mkdirat(dirfd: i32, path: impl AsRef<OsStr>, mode: u32) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path alive for the call.
    unsafe {
        raw(
            nr::MKDIRAT,
            [dirfd as i64, ptr(c.as_ptr()), mode as i64, 0, 0, 0],
        )
    }
    .map(drop)
}

/// Removes a name relative to `dirfd` (`abi::AT_REMOVEDIR` for a directory).
pub fn unlinkat(dirfd: i32, path: impl AsRef<OsStr>, flags: i32) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path alive for the call.
    unsafe {
        raw(
            nr::UNLINKAT,
            [dirfd as i64, ptr(c.as_ptr()), flags as i64, 0, 0, 0],
        )
    }
    .map(drop)
}

/// Creates a node (file, FIFO, socket, device) relative to `dirfd`.
pub fn mknodat(dirfd: i32, path: impl AsRef<OsStr>, mode: u32, dev: u64) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path alive for the call.
    unsafe {
        raw(
            nr::MKNODAT,
            [dirfd as i64, ptr(c.as_ptr()), mode as i64, dev as i64, 0, 0],
        )
    }
    .map(drop)
}

/// `renameat2`; `flags` from `abi::RENAME_*` (0 for a plain rename).
pub fn renameat2(
    olddirfd: i32,
    old: impl AsRef<OsStr>,
    newdirfd: i32,
    new: impl AsRef<OsStr>,
    flags: u32,
) -> Result<(), Errno> {
    let (o, n) = (cpath(old)?, cpath(new)?);
    // SAFETY: two NUL-terminated paths alive for the call.
    unsafe {
        raw(
            nr::RENAMEAT2,
            [
                olddirfd as i64,
                ptr(o.as_ptr()),
                newdirfd as i64,
                ptr(n.as_ptr()),
                flags as i64,
                0,
            ],
        )
    }
    .map(drop)
}

pub fn rename(old: impl AsRef<OsStr>, new: impl AsRef<OsStr>) -> Result<(), Errno> {
    renameat2(abi::AT_FDCWD, old, abi::AT_FDCWD, new, 0)
}

/// Makes a hard link `new` to `old`; `flags` may hold `AT_SYMLINK_FOLLOW`
/// or `AT_EMPTY_PATH` (link an open descriptor).
pub fn linkat(
    olddirfd: i32,
    old: impl AsRef<OsStr>,
    newdirfd: i32,
    new: impl AsRef<OsStr>,
    flags: i32,
) -> Result<(), Errno> {
    let (o, n) = (cpath(old)?, cpath(new)?);
    // SAFETY: two NUL-terminated paths alive for the call.
    unsafe {
        raw(
            nr::LINKAT,
            [
                olddirfd as i64,
                ptr(o.as_ptr()),
                newdirfd as i64,
                ptr(n.as_ptr()),
                flags as i64,
                0,
            ],
        )
    }
    .map(drop)
}

pub fn link(old: impl AsRef<OsStr>, new: impl AsRef<OsStr>) -> Result<(), Errno> {
    linkat(abi::AT_FDCWD, old, abi::AT_FDCWD, new, 0)
}

/// Makes a symbolic link at `linkpath` (relative to `newdirfd`) holding `target`.
pub fn symlinkat(
    target: impl AsRef<OsStr>,
    newdirfd: i32,
    linkpath: impl AsRef<OsStr>,
) -> Result<(), Errno> {
    let (t, l) = (cpath(target)?, cpath(linkpath)?);
    // SAFETY: two NUL-terminated paths alive for the call.
    unsafe {
        raw(
            nr::SYMLINKAT,
            [ptr(t.as_ptr()), newdirfd as i64, ptr(l.as_ptr()), 0, 0, 0],
        )
    }
    .map(drop)
}

pub fn symlink(target: impl AsRef<OsStr>, linkpath: impl AsRef<OsStr>) -> Result<(), Errno> {
    symlinkat(target, abi::AT_FDCWD, linkpath)
}

/// The target of a symbolic link (any length). An empty `path` with an
/// `O_PATH` descriptor of the link reads that link.
pub fn readlinkat(dirfd: i32, path: impl AsRef<OsStr>) -> Result<PathBuf, Errno> {
    let c = cpath(path)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe {
            raw(
                nr::READLINKAT,
                [
                    dirfd as i64,
                    ptr(c.as_ptr()),
                    ptr_mut(buf.as_mut_ptr()),
                    buf.len() as i64,
                    0,
                    0,
                ],
            )
        }? as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(PathBuf::from(OsString::from_vec(buf)));
        }
        // Possibly cut short: try again with room to spare.
        let len = buf.len() * 4;
        buf.resize(len, 0);
    }
}

pub fn readlink(path: impl AsRef<OsStr>) -> Result<PathBuf, Errno> {
    readlinkat(abi::AT_FDCWD, path)
}

/// Changes permission bits. `flags` 0 uses `fchmodat`; other flags
/// (`AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`) use `fchmodat2`.
pub fn fchmodat(dirfd: i32, path: impl AsRef<OsStr>, mode: u32, flags: i32) -> Result<(), Errno> {
    let c = cpath(path)?;
    let args = [
        dirfd as i64,
        ptr(c.as_ptr()),
        mode as i64,
        flags as i64,
        0,
        0,
    ];
    let call = if flags == 0 {
        nr::FCHMODAT
    } else {
        nr::FCHMODAT2
    };
    // SAFETY: a NUL-terminated path alive for the call.
    unsafe { raw(call, args) }.map(drop)
}

pub fn chmod(path: impl AsRef<OsStr>, mode: u32) -> Result<(), Errno> {
    fchmodat(abi::AT_FDCWD, path, mode, 0)
}

pub fn fchmod(fd: i32, mode: u32) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::FCHMOD, [fd as i64, mode as i64, 0, 0, 0, 0]) }.map(drop)
}

/// The kernel's "leave unchanged" id (-1) for `None`.
fn id_arg(id: Option<u32>) -> i64 {
    id.map_or(-1, |v| v as i64)
}

/// Changes owner and group (`None` leaves one unchanged).
pub fn fchownat(
    dirfd: i32,
    path: impl AsRef<OsStr>,
    uid: Option<u32>,
    gid: Option<u32>,
    flags: i32,
) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path alive for the call.
    unsafe {
        raw(
            nr::FCHOWNAT,
            [
                dirfd as i64,
                ptr(c.as_ptr()),
                id_arg(uid),
                id_arg(gid),
                flags as i64,
                0,
            ],
        )
    }
    .map(drop)
}

pub fn chown(path: impl AsRef<OsStr>, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
    fchownat(abi::AT_FDCWD, path, uid, gid, 0)
}

pub fn lchown(path: impl AsRef<OsStr>, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
    fchownat(abi::AT_FDCWD, path, uid, gid, abi::AT_SYMLINK_NOFOLLOW)
}

pub fn fchown(fd: i32, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::FCHOWN, [fd as i64, id_arg(uid), id_arg(gid), 0, 0, 0]) }.map(drop)
}

/// Sets access and modification times (`[atime, mtime]`; a `tv_nsec` of
/// `abi::UTIME_NOW` / `abi::UTIME_OMIT` means now / unchanged). `None`
/// sets both to now.
pub fn utimensat(
    dirfd: i32,
    path: impl AsRef<OsStr>,
    times: Option<[Timespec; 2]>,
    flags: i32,
) -> Result<(), Errno> {
    let c = cpath(path)?;
    let tp = times.as_ref().map_or(0, |t| ptr(t.as_ptr()));
    // SAFETY: a NUL-terminated path and, if given, two timespecs, alive
    // for the call.
    unsafe {
        raw(
            nr::UTIMENSAT,
            [dirfd as i64, ptr(c.as_ptr()), tp, flags as i64, 0, 0],
        )
    }
    .map(drop)
}

/// `futimens`: `utimensat` on an open descriptor (for an `O_PATH` one,
/// `utimensat(fd, "", times, AT_EMPTY_PATH)`).
pub fn futimens(fd: i32, times: Option<[Timespec; 2]>) -> Result<(), Errno> {
    let tp = times.as_ref().map_or(0, |t| ptr(t.as_ptr()));
    // SAFETY: a NULL path (the descriptor itself) and, if given, two
    // timespecs alive for the call.
    unsafe { raw(nr::UTIMENSAT, [fd as i64, 0, tp, 0, 0, 0]) }.map(drop)
}

pub fn truncate(path: impl AsRef<OsStr>, len: i64) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path alive for the call.
    unsafe { raw(nr::TRUNCATE, [ptr(c.as_ptr()), len, 0, 0, 0, 0]) }.map(drop)
}

pub fn ftruncate(fd: i32, len: i64) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::FTRUNCATE, [fd as i64, len, 0, 0, 0, 0]) }.map(drop)
}

/// Allocates (or with `abi::FALLOC_FL_*`, punches or zeroes) a range.
pub fn fallocate(fd: i32, mode: i32, offset: i64, len: i64) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::FALLOCATE, [fd as i64, mode as i64, offset, len, 0, 0]) }.map(drop)
}

pub fn statfs(path: impl AsRef<OsStr>) -> Result<StatFs, Errno> {
    let c = cpath(path)?;
    let mut st = StatFs::default();
    // SAFETY: a NUL-terminated path and a generic-ABI struct statfs to fill.
    unsafe { raw(nr::STATFS, [ptr(c.as_ptr()), ptr_mut(&mut st), 0, 0, 0, 0]) }?;
    Ok(st)
}

/// `fstatfs` (an `O_PATH` descriptor works).
pub fn fstatfs(fd: i32) -> Result<StatFs, Errno> {
    let mut st = StatFs::default();
    // SAFETY: a generic-ABI struct statfs to fill.
    unsafe { raw(nr::FSTATFS, [fd as i64, ptr_mut(&mut st), 0, 0, 0, 0]) }?;
    Ok(st)
}

/// Checks access (`abi::F_OK` or `R_OK | W_OK | X_OK`). `flags` 0 uses
/// `faccessat`; other flags (`AT_EACCESS`, `AT_SYMLINK_NOFOLLOW`,
/// `AT_EMPTY_PATH`) use `faccessat2`.
pub fn faccessat(dirfd: i32, path: impl AsRef<OsStr>, mode: i32, flags: i32) -> Result<(), Errno> {
    let c = cpath(path)?;
    let args = [
        dirfd as i64,
        ptr(c.as_ptr()),
        mode as i64,
        flags as i64,
        0,
        0,
    ];
    let call = if flags == 0 {
        nr::FACCESSAT
    } else {
        nr::FACCESSAT2
    };
    // SAFETY: a NUL-terminated path alive for the call.
    unsafe { raw(call, args) }.map(drop)
}

pub fn access(path: impl AsRef<OsStr>, mode: i32) -> Result<(), Errno> {
    faccessat(abi::AT_FDCWD, path, mode, 0)
}

pub fn fdatasync(fd: i32) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::FDATASYNC, [fd as i64, 0, 0, 0, 0, 0]) }.map(drop)
}

/// Writes back the file system holding `fd`.
pub fn syncfs(fd: i32) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::SYNCFS, [fd as i64, 0, 0, 0, 0, 0]) }.map(drop)
}

/// `statx`: `flags` from `AT_*`, `mask` from `abi::STATX_*`.
pub fn statx(dirfd: i32, path: impl AsRef<OsStr>, flags: i32, mask: u32) -> Result<Statx, Errno> {
    let c = cpath(path)?;
    let mut st = Statx::default();
    // SAFETY: a NUL-terminated path and a struct statx to fill.
    unsafe {
        raw(
            nr::STATX,
            [
                dirfd as i64,
                ptr(c.as_ptr()),
                flags as i64,
                mask as i64,
                ptr_mut(&mut st),
                0,
            ],
        )
    }?;
    Ok(st)
}

// Extended attributes. The `*_into` forms mirror the system calls: an empty
// buffer asks for the size needed; `ERANGE` means the buffer was too small.

fn xattr_get(call: i64, target: i64, name: &OsStr, buf: &mut [u8]) -> Result<usize, Errno> {
    let n = cpath(name)?;
    // SAFETY: `target` is a live path pointer or a descriptor (the callers'
    // choice by `call`), `n` a NUL-terminated name; the kernel writes at
    // most `buf.len()` bytes (none when it is empty).
    unsafe {
        raw(
            call,
            [
                target,
                ptr(n.as_ptr()),
                ptr_mut(buf.as_mut_ptr()),
                buf.len() as i64,
                0,
                0,
            ],
        )
    }
    .map(|v| v as usize)
}

fn xattr_set(call: i64, target: i64, name: &OsStr, value: &[u8], flags: i32) -> Result<(), Errno> {
    let n = cpath(name)?;
    // SAFETY: as `xattr_get`; the kernel reads `value.len()` bytes.
    unsafe {
        raw(
            call,
            [
                target,
                ptr(n.as_ptr()),
                ptr(value.as_ptr()),
                value.len() as i64,
                flags as i64,
                0,
            ],
        )
    }
    .map(drop)
}

fn xattr_list(call: i64, target: i64, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: as `xattr_get`.
    unsafe {
        raw(
            call,
            [target, ptr_mut(buf.as_mut_ptr()), buf.len() as i64, 0, 0, 0],
        )
    }
    .map(|v| v as usize)
}

fn xattr_remove(call: i64, target: i64, name: &OsStr) -> Result<(), Errno> {
    let n = cpath(name)?;
    // SAFETY: as `xattr_get`.
    unsafe { raw(call, [target, ptr(n.as_ptr()), 0, 0, 0, 0]) }.map(drop)
}

/// Reads a whole value or list, growing the buffer while it races with
/// writers (`ERANGE`).
fn grow(mut call: impl FnMut(&mut [u8]) -> Result<usize, Errno>) -> Result<Vec<u8>, Errno> {
    loop {
        let size = call(&mut [])?;
        let mut buf = vec![0u8; size];
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Splits a NUL-separated name list.
pub fn xattr_names(list: &[u8]) -> Vec<OsString> {
    list.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| OsStr::from_bytes(n).to_os_string())
        .collect()
}

pub fn getxattr_into(
    path: impl AsRef<OsStr>,
    name: impl AsRef<OsStr>,
    buf: &mut [u8],
) -> Result<usize, Errno> {
    let c = cpath(path)?;
    xattr_get(nr::GETXATTR, ptr(c.as_ptr()), name.as_ref(), buf)
}

pub fn lgetxattr_into(
    path: impl AsRef<OsStr>,
    name: impl AsRef<OsStr>,
    buf: &mut [u8],
) -> Result<usize, Errno> {
    let c = cpath(path)?;
    xattr_get(nr::LGETXATTR, ptr(c.as_ptr()), name.as_ref(), buf)
}

pub fn fgetxattr_into(fd: i32, name: impl AsRef<OsStr>, buf: &mut [u8]) -> Result<usize, Errno> {
    xattr_get(nr::FGETXATTR, fd as i64, name.as_ref(), buf)
}

/// A whole attribute value (following symlinks).
pub fn getxattr(path: impl AsRef<OsStr>, name: impl AsRef<OsStr>) -> Result<Vec<u8>, Errno> {
    let (path, name) = (path.as_ref(), name.as_ref());
    grow(|buf| getxattr_into(path, name, buf))
}

/// A whole attribute value of the link itself.
pub fn lgetxattr(path: impl AsRef<OsStr>, name: impl AsRef<OsStr>) -> Result<Vec<u8>, Errno> {
    let (path, name) = (path.as_ref(), name.as_ref());
    grow(|buf| lgetxattr_into(path, name, buf))
}

/// `flags`: 0, `abi::XATTR_CREATE` or `abi::XATTR_REPLACE`.
pub fn setxattr(
    path: impl AsRef<OsStr>,
    name: impl AsRef<OsStr>,
    value: &[u8],
    flags: i32,
) -> Result<(), Errno> {
    let c = cpath(path)?;
    xattr_set(nr::SETXATTR, ptr(c.as_ptr()), name.as_ref(), value, flags)
}

pub fn lsetxattr(
    path: impl AsRef<OsStr>,
    name: impl AsRef<OsStr>,
    value: &[u8],
    flags: i32,
) -> Result<(), Errno> {
    let c = cpath(path)?;
    xattr_set(nr::LSETXATTR, ptr(c.as_ptr()), name.as_ref(), value, flags)
}

pub fn fsetxattr(fd: i32, name: impl AsRef<OsStr>, value: &[u8], flags: i32) -> Result<(), Errno> {
    xattr_set(nr::FSETXATTR, fd as i64, name.as_ref(), value, flags)
}

pub fn listxattr_into(path: impl AsRef<OsStr>, buf: &mut [u8]) -> Result<usize, Errno> {
    let c = cpath(path)?;
    xattr_list(nr::LISTXATTR, ptr(c.as_ptr()), buf)
}

pub fn llistxattr_into(path: impl AsRef<OsStr>, buf: &mut [u8]) -> Result<usize, Errno> {
    let c = cpath(path)?;
    xattr_list(nr::LLISTXATTR, ptr(c.as_ptr()), buf)
}

pub fn flistxattr_into(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    xattr_list(nr::FLISTXATTR, fd as i64, buf)
}

/// The attribute names (following symlinks).
pub fn listxattr(path: impl AsRef<OsStr>) -> Result<Vec<OsString>, Errno> {
    let path = path.as_ref();
    grow(|buf| listxattr_into(path, buf)).map(|l| xattr_names(&l))
}

/// The attribute names of the link itself.
pub fn llistxattr(path: impl AsRef<OsStr>) -> Result<Vec<OsString>, Errno> {
    let path = path.as_ref();
    grow(|buf| llistxattr_into(path, buf)).map(|l| xattr_names(&l))
}

pub fn removexattr(path: impl AsRef<OsStr>, name: impl AsRef<OsStr>) -> Result<(), Errno> {
    let c = cpath(path)?;
    xattr_remove(nr::REMOVEXATTR, ptr(c.as_ptr()), name.as_ref())
}

pub fn lremovexattr(path: impl AsRef<OsStr>, name: impl AsRef<OsStr>) -> Result<(), Errno> {
    let c = cpath(path)?;
    xattr_remove(nr::LREMOVEXATTR, ptr(c.as_ptr()), name.as_ref())
}

pub fn fremovexattr(fd: i32, name: impl AsRef<OsStr>) -> Result<(), Errno> {
    xattr_remove(nr::FREMOVEXATTR, fd as i64, name.as_ref())
}

/// One record of a `getdents64` buffer, its name as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    /// `DT_*` (4 directory, 8 regular, 10 symlink, 0 unknown, ...).
    pub kind: u8,
    pub name: OsString,
}

/// The records of a buffer filled by `getdents64` (names kept as bytes,
/// unlike [`super::dirent_names`]).
pub fn dir_entries(buf: &[u8]) -> Vec<DirEntry> {
    const NAME: usize = 19; // d_ino 8, d_off 8, d_reclen 2, d_type 1
    let mut out = Vec::new();
    let mut off = 0;
    while off + NAME < buf.len() {
        let rec = &buf[off..];
        let reclen = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
        if reclen <= NAME || reclen > rec.len() {
            break;
        }
        let mut ino = [0u8; 8];
        ino.copy_from_slice(&rec[..8]);
        let name = &rec[NAME..reclen];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        out.push(DirEntry {
            ino: u64::from_ne_bytes(ino),
            kind: rec[18],
            name: OsStr::from_bytes(&name[..end]).to_os_string(),
        });
        off += reclen;
    }
    out
}

/// Every entry of an open directory (from its current position), `.` and
/// `..` included.
pub fn read_dir_fd(fd: i32) -> Result<Vec<DirEntry>, Errno> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match super::getdents64(fd, &mut buf)? {
            0 => return Ok(out),
            n => out.extend(dir_entries(&buf[..n])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_name_lists() {
        assert_eq!(
            xattr_names(b"user.a\0trusted.b\0"),
            vec![OsString::from("user.a"), OsString::from("trusted.b")]
        );
        assert!(xattr_names(b"").is_empty());
    }

    #[test]
    fn dirent_records() {
        let mut buf = Vec::new();
        for (ino, kind, name) in [(5u64, 4u8, &b"."[..]), (77, 8, b"odd\xff")] {
            let reclen = (19 + name.len() + 1).div_ceil(8) * 8;
            let start = buf.len();
            buf.extend_from_slice(&ino.to_ne_bytes());
            buf.extend_from_slice(&0i64.to_ne_bytes());
            buf.extend_from_slice(&(reclen as u16).to_ne_bytes());
            buf.push(kind);
            buf.extend_from_slice(name);
            buf.resize(start + reclen, 0);
        }
        let e = dir_entries(&buf);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].ino, e[0].kind), (5, 4));
        assert_eq!(e[1].name.as_bytes(), b"odd\xff");
        assert_eq!(e[1].ino, 77);
    }

    #[test]
    fn ids() {
        assert_eq!(id_arg(None), -1);
        assert_eq!(id_arg(Some(1000)), 1000);
    }
}
