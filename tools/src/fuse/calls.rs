//! What the requests share: directory snapshots, open flags, the checks
//! and calls of SETATTR, extended-attribute and common replies.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileHandle, Generation, INodeNo, ReplyEmpty, ReplyEntry, ReplyXattr, Request,
    TimeOrNow,
};
use lkl::syscall::{self as sys, abi, abi::Timespec, Errno};

use super::inodes::{stat_fd, KernelFd};
use super::stale::Forget;
use super::{ferr, lock, proc_path, KernelFs, TTL};

/// Directory handles are numbered from here, file handles are kernel
/// descriptors (far below).
pub(super) const DIR_HANDLE_BASE: u64 = 1 << 40;

/// A snapshot of a directory's entries, taken at opendir.
pub(super) struct DirHandle {
    pub(super) fd: Arc<KernelFd>,
    pub(super) entries: Vec<sys::DirEntry>,
}

fn to_timespec(t: Option<TimeOrNow>) -> Timespec {
    match t {
        None => Timespec::OMIT,
        Some(TimeOrNow::Now) => Timespec::NOW,
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: i64::from(d.subsec_nanos()),
            },
            Err(e) => {
                let d = e.duration();
                let mut ts = Timespec {
                    tv_sec: -(d.as_secs() as i64),
                    tv_nsec: -i64::from(d.subsec_nanos()),
                };
                if ts.tv_nsec < 0 {
                    ts.tv_sec -= 1;
                    ts.tv_nsec += 1_000_000_000;
                }
                ts
            }
        },
    }
}

impl KernelFs {
    pub(super) fn writable(&self) -> Result<(), Errno> {
        if self.opts.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// Open flags for the kernel: with the writeback cache the host reads
    /// pages of write-only files and places appends itself.
    pub(super) fn open_flags(&self, flags: i32) -> i32 {
        let mut f = flags & !(abi::O_CREAT | abi::O_EXCL | abi::O_NOCTTY);
        if self.opts.writeback_cache {
            if f & 3 == abi::O_WRONLY {
                f = (f & !3) | abi::O_RDWR;
            }
            f &= !abi::O_APPEND;
        }
        f | abi::O_CLOEXEC | abi::O_LARGEFILE
    }

    /// Clears the set-user-ID bit of open file `fd` (inode `ino`), and its
    /// set-group-ID bit if it is group-executable, as a write by a caller
    /// without CAP_FSETID does (the host asks with
    /// FUSE_WRITE_KILL_SUIDGID), and has the host forget the mode it keeps
    /// (its next permission check, an `exec`'s too, asks us again).
    pub(super) fn kill_suidgid(&self, ino: u64, fd: i32) -> Result<(), Errno> {
        let mode = stat_fd(fd)?.st_mode & 0o7777;
        let mut kill = 0o4000;
        if mode & 0o010 != 0 {
            kill |= 0o2000;
        }
        if mode & kill == 0 {
            return Ok(());
        }
        // The host's own request, as for the mode change it sends when it
        // writes through its cache (see `do_setattr`).
        self.as_root()?;
        sys::fchmodat(fd, "", mode & !kill, abi::AT_EMPTY_PATH)?;
        self.direct_creates.forget(Forget::Attrs(ino));
        Ok(())
    }

    /// Makes a node `name` in `parent` with `make` (given the parent's
    /// descriptor), gives it to the caller and looks it up.
    pub(super) fn make_node(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        make: impl FnOnce(i32) -> Result<(), Errno>,
    ) -> Result<FileAttr, Errno> {
        self.writable()?;
        let p = self.node(parent)?;
        make(p.0)?;
        self.own(req, &p, name)?;
        let (ino, st) = self.lookup_child(&p, name)?;
        Ok(self.attr(ino, &st))
    }

    /// Gives the new node to the caller if the kernel created it as root
    /// (permissions checked by the host); made as the caller, it is theirs
    /// already (with the directory's group where it is set-group-ID).
    pub(super) fn own(&self, req: &Request, parent: &KernelFd, name: &OsStr) -> Result<(), Errno> {
        if !self.kernel_checks() && (req.uid() != 0 || req.gid() != 0) {
            // In a set-group-ID directory the node keeps the directory's group.
            let gid = if req.gid() != 0 && stat_fd(parent.0)?.st_mode & 0o2000 == 0 {
                Some(req.gid())
            } else {
                None
            };
            sys::fchownat(
                parent.0,
                name,
                Some(req.uid()),
                gid,
                abi::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        Ok(())
    }

    /// SETATTR's changes, in the order the kernel would make them. With
    /// our kernel checking permissions they are made as the caller, except
    /// two kinds of change the host makes for its own bookkeeping, made as
    /// root where the caller may not: times that come with a file handle or
    /// a size (the host's writeback cache writes back the times it keeps,
    /// of a file open for writing or just truncated: the caller may write
    /// the file but need not own it), and a mode change that only clears the set-user-ID and
    /// set-group-ID bits (the host asks for it when someone who does not own
    /// such a file writes it). Times equal to the ctime the host sends along
    /// are its "now" (see below).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn do_setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        self.writable()?;
        let fd = self.node(ino)?;
        self.as_caller(req)?;
        if let Some(mode) = mode {
            let mode = mode & 0o7777;
            match sys::fchmodat(fd.0, "", mode, abi::AT_EMPTY_PATH) {
                Err(Errno::EPERM) if self.kernel_checks() => {
                    let now = stat_fd(fd.0)?.st_mode & 0o7777;
                    let setid = 0o6000; // S_ISUID | S_ISGID
                    if mode & !setid != now & !setid || mode & setid & !now != 0 {
                        return Err(Errno::EPERM);
                    }
                    self.as_root()?;
                    sys::fchmodat(fd.0, "", mode, abi::AT_EMPTY_PATH)?;
                    self.as_caller(req)?;
                }
                r => r?,
            }
        }
        if uid.is_some() || gid.is_some() {
            sys::fchownat(fd.0, "", uid, gid, abi::AT_EMPTY_PATH)?;
        }
        if let Some(size) = size {
            match fh {
                Some(FileHandle(h)) if h < DIR_HANDLE_BASE => {
                    sys::ftruncate(h as i32, size as i64)?
                }
                _ => sys::truncate(proc_path(fd.0), size as i64)?,
            }
        }
        if atime.is_some() || mtime.is_some() {
            let (mut atime, mut mtime) = (atime, mtime);
            let bookkeeping = fh.is_some() || size.is_some();
            if let (false, Some(c)) = (bookkeeping, ctime) {
                // With its writeback cache the host sends "now" as the
                // time itself, the same as the ctime it sends along: ask
                // for now, which needs write permission, not ownership.
                let now = |t| match t {
                    Some(TimeOrNow::SpecificTime(t)) if t == c => Some(TimeOrNow::Now),
                    t => t,
                };
                (atime, mtime) = (now(atime), now(mtime));
            }
            let times = [to_timespec(atime), to_timespec(mtime)];
            match sys::utimensat(fd.0, "", Some(times), abi::AT_EMPTY_PATH) {
                // Set as the caller where they own the file (no change of
                // identity), else as root.
                Err(Errno::EPERM) if bookkeeping && self.kernel_checks() => {
                    self.as_root()?;
                    sys::utimensat(fd.0, "", Some(times), abi::AT_EMPTY_PATH)?;
                }
                r => r?,
            }
        }
        let st = stat_fd(fd.0)?;
        Ok(self.attr(ino.0, &st))
    }

    pub(super) fn dir(&self, fh: FileHandle) -> Result<Arc<DirHandle>, Errno> {
        lock(&self.dirs).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    pub(super) fn xattr_reply(r: Result<usize, Errno>, size: u32, buf: &[u8], reply: ReplyXattr) {
        match r {
            Ok(n) if size == 0 => reply.size(n as u32),
            Ok(n) => reply.data(&buf[..n.min(buf.len())]),
            Err(e) => reply.error(ferr(e)),
        }
    }
}

pub(super) fn reply_entry(r: Result<FileAttr, Errno>, reply: ReplyEntry) {
    match r {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(ferr(e)),
    }
}

pub(super) fn reply_empty(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(ferr(e)),
    }
}
