//! A FUSE file system served by the kernel's file calls: the host mounts
//! it with `fuser`, and every request becomes system calls into our kernel
//! on a directory of its tree (a disk's mount point, usually).
//!
//! Inodes. Each inode the host's FUSE layer knows holds one kernel `O_PATH`
//! descriptor of the file (opened without following symlinks), kept until
//! the host forgets the inode: every operation works relative to that
//! descriptor (`*at` calls with `AT_EMPTY_PATH`, or the magic link
//! `/proc/self/fd/N` where a call needs a path: opening, truncating by
//! inode, extended attributes). So renames of any ancestor need no
//! bookkeeping, hard links are one inode, and an unlinked file that is
//! still open keeps working.
//!
//! FUSE inode numbers are the kernel's own inode numbers, so `stat` and
//! `readdir` agree and numbers stay the same across mounts: the root's
//! number and 1 (FUSE's root) swap places. Files on another device (a btrfs
//! subvolume) get numbers from a private range above 2^63.
//!
//! Requests come from several host threads at once (the kernel takes
//! concurrent calls from any thread); the node table is one mutex held only
//! for map updates, never across a system call. A gate keeps requests that
//! do not block on one thread (see `Gate`): in our one-CPU kernel every
//! change of calling thread costs a task switch. Requests that may block
//! (reads, large writes, fsync, directory reads, truncation) step aside and
//! run alongside the others.
//!
//! Large reads and writes (64 KiB and more, aligned; writes only with the
//! host's writeback cache) use an `O_DIRECT` twin of the open file and a
//! per-thread buffer in the kernel's memory: the image's data reaches the
//! host in one copy fewer, and neither fills the kernel's page cache (the
//! host's page cache already holds the image) nor waits for its throttled
//! writeback.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use lkl::syscall::{self as sys, abi, abi::Stat, abi::Timespec, Errno};

/// How long the host may cache names and attributes: nothing else changes
/// the file system while it is mounted here.
const TTL: Duration = Duration::from_secs(1);

/// Directory handles are numbered from here, file handles are kernel
/// descriptors (far below).
const DIR_HANDLE_BASE: u64 = 1 << 40;

/// First inode number of files on other devices.
const FOREIGN_BASE: u64 = 1 << 63;

/// How the file system is served.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Refuse every change (the kernel mount is read-only too).
    pub read_only: bool,
    /// Let the host cache writes and send them in large batches
    /// (`FUSE_WRITEBACK_CACHE`).
    pub writeback_cache: bool,
    /// Largest write request, bytes.
    pub max_write: u32,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            read_only: false,
            writeback_cache: true,
            max_write: 1 << 20,
        }
    }
}

/// A kernel descriptor, closed when the last holder lets go.
#[derive(Debug)]
struct KernelFd(i32);

impl Drop for KernelFd {
    fn drop(&mut self) {
        let _ = sys::close(self.0);
    }
}

struct Node {
    fd: Arc<KernelFd>,
    /// Lookups the host holds on this inode.
    nlookup: u64,
    /// (st_dev, st_ino) for foreign-device nodes, to free their number.
    foreign_key: Option<(u64, u64)>,
}

struct Table {
    nodes: HashMap<u64, Node>,
    foreign: HashMap<(u64, u64), u64>,
    next_foreign: u64,
}

/// A snapshot of a directory's entries, taken at opendir.
struct DirHandle {
    fd: Arc<KernelFd>,
    entries: Vec<sys::DirEntry>,
}

/// Keeps requests on one host thread while they do not block.
///
/// The host's FUSE layer hands each request to the thread that has waited
/// longest, so with several request threads consecutive requests land on
/// different threads; in our one-CPU kernel every such change is a task
/// switch (scheduler, idle exit, timer reprogramming, host wake-ups). So
/// only one thread, the one holding the gate, goes back to reading
/// requests after serving one; the others wait here. A request that may
/// block for long (data I/O, fsync, directory reads, truncation) steps
/// aside first, letting another thread read meanwhile: that is where
/// several threads serve requests at once.
///
/// Waiting threads give up after a quiet spell with no requests served
/// (the session may be ending: the holder's read fails and it leaves
/// without passing the gate on), and go back to reading.
struct Gate {
    held: Mutex<bool>,
    freed: Condvar,
    served: AtomicU64,
    /// How long a waiting thread stays parked with no request served.
    quiet: Duration,
}

thread_local! {
    /// This thread holds the gate.
    static HOLDS_GATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Gate {
    fn new(quiet: Duration) -> Self {
        Gate {
            held: Mutex::new(false),
            freed: Condvar::new(),
            served: AtomicU64::new(0),
            quiet,
        }
    }

    /// At the start of a request that may block: let another thread read.
    fn step_aside(&self) {
        if HOLDS_GATE.get() {
            HOLDS_GATE.set(false);
            *lock(&self.held) = false;
            self.freed.notify_one();
        }
    }

    /// At the end of every request, before the thread reads the next one.
    fn rejoin(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
        if HOLDS_GATE.get() {
            return;
        }
        let mut held = lock(&self.held);
        loop {
            if !*held {
                *held = true;
                HOLDS_GATE.set(true);
                return;
            }
            let seen = self.served.load(Ordering::Relaxed);
            let (g, t) = self
                .freed
                .wait_timeout(held, self.quiet)
                .unwrap_or_else(|e| e.into_inner());
            held = g;
            if t.timed_out() && self.served.load(Ordering::Relaxed) == seen {
                return; // quiet: read anyway
            }
        }
    }
}

/// Passes through the gate for one request: [`Gate::rejoin`] on drop.
struct GatePass<'a>(&'a Gate);

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        self.0.rejoin();
    }
}

/// Writes up to this size are served without stepping aside (they only
/// copy into the kernel's page cache); larger ones may wait for writeback.
const INLINE_WRITE: usize = 128 << 10;

/// The FUSE file system over a kernel directory.
pub struct KernelFs {
    opts: FsOptions,
    root_dev: u64,
    root_ino: u64,
    table: Mutex<Table>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next_dir: AtomicU64,
    /// Kernel descriptors of open files: the host sends RELEASE after
    /// close() returns, so at unmount some may still be open; they are
    /// closed when the file system is dropped, before the kernel unmounts.
    files: Mutex<HashSet<i32>>,
    /// Run once, at the first LOOKUP (see [`KernelFs::on_first_lookup`]).
    first_lookup: Mutex<Option<FirstLookup>>,
    first_lookup_pending: AtomicBool,
    gate: Gate,
    /// `O_DIRECT` twins of open files (by kernel descriptor), for large
    /// reads.
    direct: Mutex<HashMap<i32, Twin>>,
}

type FirstLookup = Box<dyn FnOnce() + Send>;

impl Drop for KernelFs {
    fn drop(&mut self) {
        for (_, twin) in lock(&self.direct).drain() {
            twin.close();
        }
        for fd in lock(&self.files).drain() {
            let _ = sys::close(fd);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ferr(e: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e.0)
}

fn proc_path(fd: i32) -> String {
    format!("/proc/self/fd/{fd}")
}

fn to_time(sec: i64, nsec: u64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec)
    }
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

/// The FUSE type of a `st_mode`.
pub fn file_type(mode: u32) -> FileType {
    match mode & abi::S_IFMT {
        abi::S_IFDIR => FileType::Directory,
        abi::S_IFLNK => FileType::Symlink,
        abi::S_IFCHR => FileType::CharDevice,
        abi::S_IFBLK => FileType::BlockDevice,
        abi::S_IFIFO => FileType::NamedPipe,
        abi::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn dtype_file_type(dt: u8) -> FileType {
    match dt {
        1 => FileType::NamedPipe,
        2 => FileType::CharDevice,
        4 => FileType::Directory,
        6 => FileType::BlockDevice,
        10 => FileType::Symlink,
        12 => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn stat_fd(fd: i32) -> Result<Stat, Errno> {
    sys::fstatat(fd, "", abi::AT_EMPTY_PATH | abi::AT_SYMLINK_NOFOLLOW)
}

fn is_dot(name: &OsStr) -> bool {
    name == "." || name == ".."
}

impl KernelFs {
    /// Serves the kernel directory `root`. Mounts procfs at `/proc` in the
    /// kernel if it is not there, clears the kernel's umask (the host's
    /// FUSE layer applies the caller's) and raises the descriptor limit.
    pub fn new(root: &str, opts: FsOptions) -> Result<KernelFs, Errno> {
        if sys::stat("/proc/self/fd").is_err() {
            match sys::mkdir("/proc", 0o555) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
            sys::mount("proc", "/proc", "proc", 0, None)?;
        }
        sys::umask(0);
        // One descriptor per inode the host holds: allow many.
        let _ = sys::setrlimit(sys::RLIMIT_NOFILE, 1 << 20, 1 << 20);
        let fd = sys::open(root, abi::O_PATH | abi::O_DIRECTORY | abi::O_CLOEXEC, 0)?;
        let fd = Arc::new(KernelFd(fd));
        let st = stat_fd(fd.0)?;
        let mut nodes = HashMap::new();
        nodes.insert(
            1,
            Node {
                fd,
                nlookup: u64::MAX / 2,
                foreign_key: None,
            },
        );
        Ok(KernelFs {
            opts,
            root_dev: st.st_dev,
            root_ino: st.st_ino,
            table: Mutex::new(Table {
                nodes,
                foreign: HashMap::new(),
                next_foreign: FOREIGN_BASE,
            }),
            dirs: Mutex::new(HashMap::new()),
            next_dir: AtomicU64::new(DIR_HANDLE_BASE),
            files: Mutex::new(HashSet::new()),
            first_lookup: Mutex::new(None),
            first_lookup_pending: AtomicBool::new(false),
            // Short enough not to hold up an unmount noticeably.
            gate: Gate::new(Duration::from_millis(100)),
            direct: Mutex::new(HashMap::new()),
        })
    }

    /// The gate pass of a request that does not block for long.
    fn pass(&self) -> GatePass<'_> {
        GatePass(&self.gate)
    }

    /// The gate pass of a request that may block: steps aside first.
    fn pass_aside(&self) -> GatePass<'_> {
        self.gate.step_aside();
        GatePass(&self.gate)
    }

    /// Runs `f` once, in the first LOOKUP request, before it is answered:
    /// the host has then finished INIT, and no file below the root can have
    /// been opened yet (opening one needs that answer). lklfuse tunes the
    /// mount's host read-ahead there.
    pub fn on_first_lookup(&mut self, f: impl FnOnce() + Send + 'static) {
        *lock(&self.first_lookup) = Some(Box::new(f));
        self.first_lookup_pending.store(true, Ordering::Release);
    }

    /// The FUSE inode number of a kernel inode on the root's device.
    fn local_ino(&self, kino: u64) -> u64 {
        if kino == self.root_ino {
            1
        } else if kino == 1 {
            self.root_ino
        } else {
            kino
        }
    }

    fn attr(&self, ino: u64, st: &Stat) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            atime: to_time(st.st_atime, st.st_atime_nsec),
            mtime: to_time(st.st_mtime, st.st_mtime_nsec),
            ctime: to_time(st.st_ctime, st.st_ctime_nsec),
            crtime: UNIX_EPOCH,
            kind: file_type(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    /// The `O_PATH` descriptor of inode `ino`.
    fn node(&self, ino: INodeNo) -> Result<Arc<KernelFd>, Errno> {
        lock(&self.table)
            .nodes
            .get(&ino.0)
            .map(|n| n.fd.clone())
            .ok_or(Errno(116)) // ESTALE
    }

    /// Looks `name` up in `parent` and takes one lookup reference on it.
    fn lookup_child(&self, parent: &KernelFd, name: &OsStr) -> Result<(u64, Stat), Errno> {
        let fd = sys::openat(
            parent.0,
            name,
            abi::O_PATH | abi::O_NOFOLLOW | abi::O_CLOEXEC,
            0,
        )?;
        let fd = KernelFd(fd);
        let st = stat_fd(fd.0)?;
        let mut t = lock(&self.table);
        let ino = if st.st_dev == self.root_dev {
            self.local_ino(st.st_ino)
        } else {
            let key = (st.st_dev, st.st_ino);
            match t.foreign.get(&key) {
                Some(&ino) => ino,
                None => {
                    let ino = t.next_foreign;
                    t.next_foreign += 1;
                    t.foreign.insert(key, ino);
                    ino
                }
            }
        };
        match t.nodes.get_mut(&ino) {
            Some(node) => node.nlookup += 1, // `fd` closes: the node has one
            None => {
                let foreign_key = (st.st_dev != self.root_dev).then_some((st.st_dev, st.st_ino));
                t.nodes.insert(
                    ino,
                    Node {
                        fd: Arc::new(fd),
                        nlookup: 1,
                        foreign_key,
                    },
                );
            }
        }
        Ok((ino, st))
    }

    fn entry(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let p = self.node(parent)?;
        let (ino, st) = self.lookup_child(&p, name)?;
        Ok(self.attr(ino, &st))
    }

    fn forget_one(&self, ino: u64, n: u64) {
        let mut t = lock(&self.table);
        let gone = match t.nodes.get_mut(&ino) {
            Some(node) if ino != 1 => {
                node.nlookup = node.nlookup.saturating_sub(n);
                node.nlookup == 0
            }
            _ => false,
        };
        if gone {
            if let Some(node) = t.nodes.remove(&ino) {
                if let Some(key) = node.foreign_key {
                    t.foreign.remove(&key);
                }
            }
        }
    }

    fn getattr_ino(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        let fd = self.node(ino)?;
        let st = stat_fd(fd.0)?;
        Ok(self.attr(ino.0, &st))
    }

    fn writable(&self) -> Result<(), Errno> {
        if self.opts.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// Open flags for the kernel: with the writeback cache the host reads
    /// pages of write-only files and places appends itself.
    fn open_flags(&self, flags: i32) -> i32 {
        let mut f = flags & !(abi::O_CREAT | abi::O_EXCL | abi::O_NOCTTY);
        if self.opts.writeback_cache {
            if f & 3 == abi::O_WRONLY {
                f = (f & !3) | abi::O_RDWR;
            }
            f &= !abi::O_APPEND;
        }
        f | abi::O_CLOEXEC | abi::O_LARGEFILE
    }

    /// Gives the new node to the caller (the kernel created it as root).
    fn own(&self, req: &Request, parent: &KernelFd, name: &OsStr) -> Result<(), Errno> {
        if req.uid() != 0 || req.gid() != 0 {
            sys::fchownat(
                parent.0,
                name,
                Some(req.uid()),
                Some(req.gid()),
                abi::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        self.writable()?;
        let fd = self.node(ino)?;
        if let Some(mode) = mode {
            sys::fchmodat(fd.0, "", mode & 0o7777, abi::AT_EMPTY_PATH)?;
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
            let times = [to_timespec(atime), to_timespec(mtime)];
            sys::utimensat(fd.0, "", Some(times), abi::AT_EMPTY_PATH)?;
        }
        let st = stat_fd(fd.0)?;
        Ok(self.attr(ino.0, &st))
    }

    fn dir(&self, fh: FileHandle) -> Result<Arc<DirHandle>, Errno> {
        lock(&self.dirs).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn xattr_reply(r: Result<usize, Errno>, size: u32, buf: &[u8], reply: ReplyXattr) {
        match r {
            Ok(n) if size == 0 => reply.size(n as u32),
            Ok(n) => reply.data(&buf[..n.min(buf.len())]),
            Err(e) => reply.error(ferr(e)),
        }
    }
}

/// Reads and writes at least this large go around the kernel's page cache.
const DIRECT_MIN: u32 = 64 << 10;
/// Size of each request thread's direct-I/O buffer (the largest READ or
/// WRITE the host sends is max_pages, 1 MiB).
const DIRECT_BUF: usize = 1 << 20;

/// A buffer in the kernel's memory, mapped by the kernel's `mmap` for one
/// request thread: `O_DIRECT` reads land there straight from the disk, and
/// `O_DIRECT` writes go to the disk straight from there.
struct KernelBuf {
    addr: usize,
}

impl KernelBuf {
    fn map() -> Result<KernelBuf, Errno> {
        const PROT_RW: i64 = 3; // PROT_READ | PROT_WRITE
        const MAP_PRIVATE_ANON: i64 = 0x22;
        // SAFETY: an anonymous mapping; no pointer argument.
        let addr = unsafe {
            sys::raw(
                sys::nr::MMAP,
                [0, DIRECT_BUF as i64, PROT_RW, MAP_PRIVATE_ANON, -1, 0],
            )
        }?;
        Ok(KernelBuf {
            addr: addr as usize,
        })
    }
}

impl Drop for KernelBuf {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; no slice of it outlives
        // the thread that owns it.
        let _ = unsafe {
            sys::raw(
                sys::nr::MUNMAP,
                [self.addr as i64, DIRECT_BUF as i64, 0, 0, 0, 0],
            )
        };
    }
}

thread_local! {
    /// This request thread's direct-I/O buffer: None until first used,
    /// Some(None) if the kernel would not map one.
    static DIRECT_IO_BUF: std::cell::RefCell<Option<Option<KernelBuf>>> =
        const { std::cell::RefCell::new(None) };
}

/// The `O_DIRECT` twin of an open file.
#[derive(Clone, Copy)]
enum Twin {
    /// Opened: direct reads go there.
    Direct(i32),
    /// Opened, but a direct read failed: it stays open (another thread may
    /// still be reading through it) and unused until the file is released.
    Refused(i32),
    /// The file system would not open one.
    None,
}

impl Twin {
    fn close(self) {
        if let Twin::Direct(fd) | Twin::Refused(fd) = self {
            let _ = sys::close(fd);
        }
    }
}

impl KernelFs {
    /// The `O_DIRECT` twin of open file `fd`, opened on first use; None if
    /// the file system will not do direct I/O on it.
    fn direct_twin(&self, fd: i32) -> Option<i32> {
        let mut m = lock(&self.direct);
        if let Some(t) = m.get(&fd) {
            return match *t {
                Twin::Direct(t) => Some(t),
                _ => None,
            };
        }
        if !lock(&self.files).contains(&fd) {
            return None;
        }
        let open = |mode| {
            sys::open(
                &proc_path(fd),
                mode | abi::O_DIRECT | abi::O_CLOEXEC | abi::O_LARGEFILE,
                0,
            )
        };
        // Read-write where the file system allows it (direct writes need
        // it; a read-only mount refuses), else read-only.
        let rw = !self.opts.read_only && self.opts.writeback_cache;
        let first = if rw {
            open(abi::O_RDWR)
        } else {
            Err(Errno::EROFS)
        };
        let twin = match first {
            Ok(t) => Twin::Direct(t),
            Err(_) => match open(abi::O_RDONLY) {
                Ok(t) => Twin::Direct(t),
                Err(_) => Twin::None,
            },
        };
        m.insert(fd, twin);
        match twin {
            Twin::Direct(t) => Some(t),
            _ => None,
        }
    }

    /// Serves a READ of `size` bytes at `offset` of open file `fd` with
    /// `O_DIRECT` into this thread's kernel buffer: the disk's data goes
    /// straight there (our virtio-blk device reads the image into it), with
    /// no copy into the kernel's page cache and none of its page allocation
    /// and reclaim (the host's page cache already holds the image). Direct
    /// reads see every write made through the file's buffered descriptor
    /// (the kernel writes the range back first). Gives `reply` back if a
    /// direct read is not possible here: read buffered instead.
    fn read_direct(&self, fd: i32, offset: u64, size: u32, reply: ReplyData) -> Option<ReplyData> {
        let want = size as usize;
        if want > DIRECT_BUF {
            return Some(reply);
        }
        let Some(twin) = self.direct_twin(fd) else {
            return Some(reply);
        };
        let addr = DIRECT_IO_BUF.with_borrow_mut(|b| {
            b.get_or_insert_with(|| KernelBuf::map().ok())
                .as_ref()
                .map(|k| k.addr)
        });
        let Some(addr) = addr else {
            return Some(reply);
        };
        // SAFETY: `addr..addr + DIRECT_BUF` is this thread's own kernel
        // mapping (alive until the thread exits) and `want <= DIRECT_BUF`.
        // Nothing else writes it: the kernel fills it only inside our pread
        // below, which returns after the disk's data has landed. The slice
        // ends with this call.
        let buf = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, want) };
        let mut done = 0;
        while done < want {
            match sys::pread(twin, &mut buf[done..], offset as i64 + done as i64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::EINTR) => continue,
                // Not for this file after all (e.g. EINVAL): buffered.
                Err(_) if done == 0 => {
                    if let Some(t) = lock(&self.direct).get_mut(&fd) {
                        *t = Twin::Refused(twin);
                    }
                    return Some(reply);
                }
                Err(_) => break,
            }
        }
        reply.data(&buf[..done]);
        None
    }

    /// Serves a WRITE through the `O_DIRECT` twin: the data is copied once
    /// into this thread's kernel buffer and our virtio-blk device writes it
    /// to the image from there, instead of a copy into the kernel's page
    /// cache that its writeback (throttled, one CPU) writes later. Only
    /// with the host's writeback cache (which places every write and
    /// strips O_APPEND) and whole, aligned 4 KiB blocks; the kernel keeps
    /// direct and buffered I/O on the file coherent. Gives `reply` back if
    /// a direct write is not possible here.
    fn write_direct(
        &self,
        fd: i32,
        offset: u64,
        data: &[u8],
        reply: ReplyWrite,
    ) -> Option<ReplyWrite> {
        if !self.opts.writeback_cache
            || data.len() < DIRECT_MIN as usize
            || data.len() > DIRECT_BUF
            || !offset.is_multiple_of(4096)
            || !data.len().is_multiple_of(4096)
        {
            return Some(reply);
        }
        let Some(twin) = self.direct_twin(fd) else {
            return Some(reply);
        };
        let addr = DIRECT_IO_BUF.with_borrow_mut(|b| {
            b.get_or_insert_with(|| KernelBuf::map().ok())
                .as_ref()
                .map(|k| k.addr)
        });
        let Some(addr) = addr else {
            return Some(reply);
        };
        // SAFETY: as in `read_direct`: this thread's own kernel mapping,
        // `data.len() <= DIRECT_BUF`; the kernel only reads it, inside our
        // pwrite below. The slice ends with this call.
        let buf = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, data.len()) };
        buf.copy_from_slice(data);
        let mut done = 0;
        while done < buf.len() {
            match sys::pwrite(twin, &buf[done..], offset as i64 + done as i64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::EINTR) => continue,
                // A read-only twin (EBADF) or no direct I/O here after all
                // (EINVAL): buffered.
                Err(Errno::EBADF | Errno::EINVAL) if done == 0 => return Some(reply),
                Err(e) if done == 0 => {
                    reply.error(ferr(e));
                    return None;
                }
                Err(_) => break,
            }
        }
        reply.written(done as u32);
        None
    }
}

fn reply_entry(r: Result<FileAttr, Errno>, reply: ReplyEntry) {
    match r {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(ferr(e)),
    }
}

fn reply_empty(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(ferr(e)),
    }
}

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

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _pass = self.pass();
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
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
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
        match self.do_setattr(ino, mode, uid, gid, size, atime, mtime, fh) {
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
        let r = self.writable().and_then(|()| {
            let p = self.node(parent)?;
            sys::mknodat(p.0, name, mode, u64::from(rdev))?;
            self.own(req, &p, name)?;
            let (ino, st) = self.lookup_child(&p, name)?;
            Ok(self.attr(ino, &st))
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
        let r = self.writable().and_then(|()| {
            let p = self.node(parent)?;
            sys::mkdirat(p.0, name, mode)?;
            self.own(req, &p, name)?;
            let (ino, st) = self.lookup_child(&p, name)?;
            Ok(self.attr(ino, &st))
        });
        reply_entry(r, reply)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _pass = self.pass();
        let r = self
            .writable()
            .and_then(|()| sys::unlinkat(self.node(parent)?.0, name, 0));
        reply_empty(r, reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _pass = self.pass();
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
        let r = self.writable().and_then(|()| {
            let p = self.node(parent)?;
            sys::symlinkat(target, p.0, link_name)?;
            self.own(req, &p, link_name)?;
            let (ino, st) = self.lookup_child(&p, link_name)?;
            Ok(self.attr(ino, &st))
        });
        reply_entry(r, reply)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass();
        let r = self.writable().and_then(|()| {
            let (a, b) = (self.node(parent)?, self.node(newparent)?);
            sys::renameat2(a.0, name, b.0, newname, flags.bits())
        });
        reply_empty(r, reply)
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _pass = self.pass();
        let r = self.writable().and_then(|()| {
            let (f, p) = (self.node(ino)?, self.node(newparent)?);
            sys::linkat(f.0, "", p.0, newname, abi::AT_EMPTY_PATH)?;
            let (ino, st) = self.lookup_child(&p, newname)?;
            Ok(self.attr(ino, &st))
        });
        reply_entry(r, reply)
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _pass = self.pass();
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
        let r = self.writable().and_then(|()| {
            let p = self.node(parent)?;
            let f = self.open_flags(flags) | abi::O_CREAT | (flags & abi::O_EXCL);
            let kfd = sys::openat(p.0, name, f, mode)?;
            let made = self
                .own(req, &p, name)
                .and_then(|()| self.lookup_child(&p, name));
            match made {
                Ok((ino, st)) => Ok((kfd, self.attr(ino, &st))),
                Err(e) => {
                    let _ = sys::close(kfd);
                    Err(e)
                }
            }
        });
        match r {
            Ok((kfd, attr)) => {
                lock(&self.files).insert(kfd);
                reply.created(
                    &TTL,
                    &attr,
                    Generation(0),
                    FileHandle(kfd as u64),
                    FopenFlags::FOPEN_KEEP_CACHE,
                )
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
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let _pass = if data.len() > INLINE_WRITE {
            self.pass_aside()
        } else {
            self.pass()
        };
        let reply = match self.write_direct(fh.0 as i32, offset, data, reply) {
            Some(reply) => reply,
            None => return,
        };
        let mut done = 0;
        while done < data.len() {
            match sys::pwrite(fh.0 as i32, &data[done..], (offset as i64) + done as i64) {
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

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _pass = self.pass_aside();
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
        _req: &Request,
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
            if reply.add(INodeNo(child), next, &e.name, &TTL, &attr, Generation(0)) {
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
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _pass = self.pass();
        let r = self
            .writable()
            .and_then(|()| sys::setxattr(proc_path(self.node(ino)?.0), name, value, flags));
        reply_empty(r, reply)
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _pass = self.pass();
        let mut buf = vec![0u8; size as usize];
        let r = self
            .node(ino)
            .and_then(|fd| sys::getxattr_into(proc_path(fd.0), name, &mut buf));
        Self::xattr_reply(r, size, &buf, reply)
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _pass = self.pass();
        let mut buf = vec![0u8; size as usize];
        let r = self
            .node(ino)
            .and_then(|fd| sys::listxattr_into(proc_path(fd.0), &mut buf));
        Self::xattr_reply(r, size, &buf, reply)
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _pass = self.pass();
        let r = self
            .writable()
            .and_then(|()| sys::removexattr(proc_path(self.node(ino)?.0), name));
        reply_empty(r, reply)
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        let _pass = self.pass();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    #[test]
    fn gate_keeps_one_reader_and_lets_blocking_requests_step_aside() {
        // Waiters never give up here: the test does not depend on timing.
        let gate = Arc::new(Gate::new(Duration::from_secs(3600)));
        // This thread serves a request and takes the gate.
        gate.rejoin();
        assert!(HOLDS_GATE.get());
        // Another thread finishing a request waits while we hold it and
        // requests keep being served...
        let (tx, rx) = mpsc::channel();
        let g = gate.clone();
        let other = std::thread::spawn(move || {
            g.rejoin();
            tx.send(HOLDS_GATE.get()).unwrap();
        });
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(20));
            gate.rejoin(); // we serve requests meanwhile: it keeps waiting
        }
        assert!(rx.try_recv().is_err(), "a second reader got through");
        // ...until a request of ours may block: then it takes over.
        gate.step_aside();
        assert!(!HOLDS_GATE.get());
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        other.join().unwrap();
    }

    #[test]
    fn gate_waiters_leave_when_nothing_is_served() {
        let quiet = Duration::from_millis(50);
        let gate = Arc::new(Gate::new(quiet));
        gate.rejoin();
        // The holder leaves without passing the gate on (the session
        // ended): a waiter goes back to reading after a quiet spell.
        let g = gate.clone();
        let t = Instant::now();
        let held = std::thread::spawn(move || {
            g.rejoin();
            HOLDS_GATE.get()
        })
        .join()
        .unwrap();
        assert!(!held);
        assert!(t.elapsed() >= quiet);
    }
}
