//! The `fuser::Filesystem` implementation: each request becomes kernel
//! calls on the inode's descriptor (or the open file's), with its gate
//! pass taken first.

use std::ffi::OsStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::Filesystem;
use fuser::{
    FileHandle, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use lkl::syscall::{self as sys, abi, Errno};

use super::calls::{reply_empty, reply_entry, DirHandle};
use super::direct::DIRECT_MIN;
use super::inodes::{dtype_file_type, is_dot, stat_fd, KernelFd};
use super::stale::DirectCreate;
use super::{ferr, lock, proc_path, KernelFs, INLINE_WRITE, TTL};

impl Filesystem for KernelFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let mut wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_ASYNC_DIO;
        if self.opts.writeback_cache && !self.opts.read_only {
            wanted |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        for flag in wanted.iter() {
            let _ = config.add_capabilities(flag);
        }
        if !config
            .capabilities()
            .contains(InitFlags::FUSE_WRITEBACK_CACHE)
        {
            self.opts.writeback_cache = false;
        }
        let _ = config.set_max_write(self.opts.max_write);
        let _ = config.set_max_readahead(self.opts.max_write);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        if self.first_lookup_pending.load(Ordering::Acquire) {
            // Taken under the lock: every concurrent first lookup waits
            // until it has run.
            let mut hook = lock(&self.first_lookup);
            if let Some(f) = hook.take() {
                f();
            }
            self.first_lookup_pending.store(false, Ordering::Release);
        }
        if parent == INodeNo::ROOT && name == ".." {
            return reply_entry(self.getattr_ino(INodeNo::ROOT), reply);
        }
        reply_entry(self.entry(parent, name), reply)
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _pass = self.pass();
        self.forget_one(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _pass = self.pass();
        match self.getattr_ino(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(ferr(e)),
        }
    }

    fn setattr(
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
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _pass = if size.is_some() {
            self.pass_aside()
        } else {
            self.pass()
        };
        match self.do_setattr(req, ino, mode, uid, gid, size, atime, mtime, ctime, fh) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(ferr(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _pass = self.pass();
        let r = self.node(ino).and_then(|fd| sys::readlinkat(fd.0, ""));
        match r {
            Ok(target) => reply.data(target.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(ferr(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self.make_node(req, parent, name, |p| {
            sys::mknodat(p, name, mode, u64::from(rdev))
        });
        reply_entry(r, reply)
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self.make_node(req, parent, name, |p| sys::mkdirat(p, name, mode));
        reply_entry(r, reply)
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self
            .writable()
            .and_then(|()| sys::unlinkat(self.node(parent)?.0, name, 0));
        reply_empty(r, reply)
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self
            .writable()
            .and_then(|()| sys::unlinkat(self.node(parent)?.0, name, abi::AT_REMOVEDIR));
        reply_empty(r, reply)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self.make_node(req, parent, link_name, |p| {
            sys::symlinkat(target, p, link_name)
        });
        reply_entry(r, reply)
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self.writable().and_then(|()| {
            let (a, b) = (self.node(parent)?, self.node(newparent)?);
            sys::renameat2(a.0, name, b.0, newname, flags.bits())
        });
        reply_empty(r, reply)
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self.writable().and_then(|()| {
            let (f, p) = (self.node(ino)?, self.node(newparent)?);
            // Through the descriptor's /proc link: `AT_EMPTY_PATH` needs
            // CAP_DAC_READ_SEARCH, which a caller's identity does not have.
            sys::linkat(
                abi::AT_FDCWD,
                proc_path(f.0),
                p.0,
                newname,
                abi::AT_SYMLINK_FOLLOW,
            )?;
            let (ino, st) = self.lookup_child(&p, newname)?;
            Ok(self.attr(ino, &st))
        });
        reply_entry(r, reply)
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self.node(ino).and_then(|fd| {
            if self.opts.read_only && flags.0 & 3 != abi::O_RDONLY {
                return Err(Errno::EROFS);
            }
            sys::open(&proc_path(fd.0), self.open_flags(flags.0), 0)
        });
        match r {
            Ok(kfd) => {
                lock(&self.files).insert(kfd);
                reply.opened(FileHandle(kfd as u64), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Err(e) => reply.error(ferr(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self.writable().and_then(|()| {
            let p = self.node(parent)?;
            let f = self.open_flags(flags) | abi::O_CREAT | (flags & abi::O_EXCL);
            let kfd = sys::openat(p.0, name, f, mode)?;
            let made = self
                .own(req, &p, name)
                .and_then(|()| self.lookup_child(&p, name));
            match made {
                Ok((ino, st)) => Ok((kfd, self.attr(ino, &st), st)),
                Err(e) => {
                    let _ = sys::close(kfd);
                    Err(e)
                }
            }
        });
        match r {
            Ok((kfd, attr, st)) => {
                lock(&self.files).insert(kfd);
                // Write-only: nothing can read or map this handle, so the
                // host's page cache would only hold the data on its way to
                // us (see `stale`).
                let mut fopen = FopenFlags::FOPEN_KEEP_CACHE;
                let wb = self.opts.writeback_cache;
                if self.opts.create_direct
                    && flags & 3 == abi::O_WRONLY
                    && (!wb || self.direct_creates.can_invalidate())
                {
                    fopen |= FopenFlags::FOPEN_DIRECT_IO;
                    if wb {
                        self.direct_creates.insert(
                            kfd,
                            DirectCreate {
                                parent: parent.0,
                                name: name.to_owned(),
                                times: [
                                    (st.st_mtime, st.st_mtime_nsec),
                                    (st.st_ctime, st.st_ctime_nsec),
                                ],
                            },
                        );
                    }
                }
                reply.created(&TTL, &attr, Generation(0), FileHandle(kfd as u64), fopen)
            }
            Err(e) => reply.error(ferr(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let _pass = self.pass_aside();
        let reply = if size >= DIRECT_MIN && offset.is_multiple_of(4096) && size.is_multiple_of(512)
        {
            match self.read_direct(fh.0 as i32, offset, size, reply) {
                Some(reply) => reply,
                None => return,
            }
        } else {
            reply
        };
        thread_local! {
            // One buffer per request thread, kept between requests (reads
            // are up to max_readahead, 1 MiB: no allocation and zeroing
            // on every one).
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with_borrow_mut(|buf| {
            let want = size as usize;
            if buf.len() < want {
                buf.resize(want, 0);
            }
            let buf = &mut buf[..want];
            let mut done = 0;
            while done < buf.len() {
                match sys::pread(fh.0 as i32, &mut buf[done..], (offset as i64) + done as i64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(Errno::EINTR) => continue,
                    Err(e) if done == 0 => return reply.error(ferr(e)),
                    Err(_) => break,
                }
            }
            reply.data(&buf[..done])
        })
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let _pass = if data.len() > INLINE_WRITE {
            self.pass_aside()
        } else {
            self.pass()
        };
        let fd = fh.0 as i32;
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            // A direct write by a caller without CAP_FSETID: the host did
            // not clear the set-user-ID bits first, as it does for writes
            // through its cache.
            if let Err(e) = self.kill_suidgid(ino.0, fd) {
                return reply.error(ferr(e));
            }
        }
        let reply = match self.write_direct(fd, offset, data, reply) {
            Some(reply) => reply,
            None => return,
        };
        let mut done = 0;
        while done < data.len() {
            match sys::pwrite(fd, &data[done..], (offset as i64) + done as i64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::EINTR) => continue,
                Err(e) if done == 0 => return reply.error(ferr(e)),
                Err(_) => break,
            }
        }
        reply.written(done as u32)
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass();
        // Nothing to do at close (data reaches the kernel with WRITE, and
        // durability is fsync's job). ENOSYS makes the host stop sending
        // FLUSH at all: one request less for every close.
        reply.error(ferr(Errno::ENOSYS))
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass();
        let fd = fh.0 as i32;
        if let Some(twin) = lock(&self.direct).remove(&fd) {
            twin.close();
        }
        self.direct_creates.release(fd);
        if lock(&self.files).remove(&fd) {
            reply_empty(sys::close(fd), reply)
        } else {
            reply.error(ferr(Errno::EBADF))
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass_aside();
        let fd = fh.0 as i32;
        reply_empty(
            if datasync {
                sys::fdatasync(fd)
            } else {
                sys::fsync(fd)
            },
            reply,
        )
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _pass = self.pass_aside();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self.node(ino).and_then(|fd| {
            let d = sys::open(
                &proc_path(fd.0),
                abi::O_RDONLY | abi::O_DIRECTORY | abi::O_CLOEXEC,
                0,
            )?;
            let d = Arc::new(KernelFd(d));
            let entries = sys::read_dir_fd(d.0)?;
            let id = self.next_dir.fetch_add(1, Ordering::Relaxed);
            lock(&self.dirs).insert(id, Arc::new(DirHandle { fd: d, entries }));
            Ok(id)
        });
        match r {
            Ok(id) => reply.opened(FileHandle(id), FopenFlags::empty()),
            Err(e) => reply.error(ferr(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _pass = self.pass_aside();
        let d = match self.dir(fh) {
            Ok(d) => d,
            Err(e) => return reply.error(ferr(e)),
        };
        for (i, e) in d.entries.iter().enumerate().skip(offset as usize) {
            let ino = if e.name == ".." && e.ino == self.root_ino {
                1
            } else {
                self.local_ino(e.ino)
            };
            if reply.add(INodeNo(ino), i as u64 + 1, dtype_file_type(e.kind), &e.name) {
                break;
            }
        }
        reply.ok()
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _pass = self.pass_aside();
        let (d, dirfd) = match self.dir(fh).and_then(|d| Ok((d, self.node(ino)?))) {
            Ok(x) => x,
            Err(e) => return reply.error(ferr(e)),
        };
        // The entries are looked up as root, as the host's checks had them:
        // a directory its caller may read but not search still lists them.
        // Then the host must not keep them (TTL zero), or its path walks
        // would reach those files without asking us, who check the search
        // permission as the caller.
        let searchable = !self.kernel_checks()
            || self.as_caller(req).is_ok_and(|()| {
                let flags = abi::AT_EMPTY_PATH | abi::AT_EACCESS;
                sys::faccessat(dirfd.0, "", abi::X_OK, flags).is_ok()
            });
        let ttl = if searchable { TTL } else { Duration::ZERO };
        if let Err(e) = self.as_root() {
            return reply.error(ferr(e));
        }
        let dir_attr = match stat_fd(dirfd.0) {
            Ok(st) => self.attr(ino.0, &st),
            Err(e) => return reply.error(ferr(e)),
        };
        for (i, e) in d.entries.iter().enumerate().skip(offset as usize) {
            let next = i as u64 + 1;
            if is_dot(&e.name) {
                // The host takes no reference on these.
                if reply.add(ino, next, &e.name, &TTL, &dir_attr, Generation(0)) {
                    break;
                }
                continue;
            }
            let (child, st) = match self.lookup_child(&dirfd, &e.name) {
                Ok(x) => x,
                Err(_) => continue, // gone since the snapshot
            };
            let attr = self.attr(child, &st);
            if reply.add(INodeNo(child), next, &e.name, &ttl, &attr, Generation(0)) {
                self.forget_one(child, 1); // not sent
                break;
            }
        }
        reply.ok()
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass();
        lock(&self.dirs).remove(&fh.0);
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass_aside();
        let r = self.dir(fh).and_then(|d| {
            if datasync {
                sys::fdatasync(d.fd.0)
            } else {
                sys::fsync(d.fd.0)
            }
        });
        reply_empty(r, reply)
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let _pass = self.pass();
        match self.node(ino).and_then(|fd| sys::fstatfs(fd.0)) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namelen as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(ferr(e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self
            .writable()
            .and_then(|()| sys::setxattr(proc_path(self.node(ino)?.0), name, value, flags));
        reply_empty(r, reply)
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let mut buf = vec![0u8; size as usize];
        let r = self
            .node(ino)
            .and_then(|fd| sys::getxattr_into(proc_path(fd.0), name, &mut buf));
        Self::xattr_reply(r, size, &buf, reply)
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let mut buf = vec![0u8; size as usize];
        let r = self
            .node(ino)
            .and_then(|fd| sys::listxattr_into(proc_path(fd.0), &mut buf));
        Self::xattr_reply(r, size, &buf, reply)
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self
            .writable()
            .and_then(|()| sys::removexattr(proc_path(self.node(ino)?.0), name));
        reply_empty(r, reply)
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        let _pass = self.pass();
        if let Err(e) = self.as_caller(req) {
            return reply.error(ferr(e));
        }
        let r = self.node(ino).and_then(|fd| {
            sys::faccessat(fd.0, "", mask.bits(), abi::AT_EMPTY_PATH | abi::AT_EACCESS)
        });
        reply_empty(r, reply)
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass_aside();
        let r = self
            .writable()
            .and_then(|()| sys::fallocate(fh.0 as i32, mode, offset as i64, length as i64));
        reply_empty(r, reply)
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let _pass = self.pass_aside();
        match sys::lseek(fh.0 as i32, offset, whence) {
            Ok(off) => reply.offset(off),
            Err(e) => reply.error(ferr(e)),
        }
    }
}
