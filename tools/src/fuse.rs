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
//!
//! Files created write-only are answered with `FOPEN_DIRECT_IO` (unless
//! `create_direct` is off): their writes reach us as they happen, and a
//! small-file create costs the host's caller two waits fewer (no GETXATTR
//! before the first write, no SETATTR of the times at close); `stale`
//! keeps the host's view of their times right.
//!
//! Permissions are checked by the host (FUSE's `default_permissions`;
//! requests then run as root in our kernel) or by our kernel, each request
//! running with its caller's identity (`Permissions`, `creds`): the second
//! spares the host a GETATTR of the directory after every create in it.
//!
//! The parts: `options` (how it is served), `inodes` (descriptors, the
//! node table, numbering, attributes), `creds` (requests as their caller),
//! `gate` (one reading thread),
//! `direct` (the `O_DIRECT` path), `stale` (files created with
//! `FOPEN_DIRECT_IO`), `calls` (what requests share), `ops`
//! (the `fuser::Filesystem` implementation, request by request).

mod calls;
mod creds;
mod direct;
mod gate;
mod inodes;
mod ops;
mod options;
mod stale;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lkl::syscall::{self as sys, abi, Errno};

use calls::{DirHandle, DIR_HANDLE_BASE};
use direct::Twin;
use gate::Gate;
use inodes::{stat_fd, KernelFd, Node, Table, FOREIGN_BASE};
use stale::DirectCreates;

pub use inodes::file_type;
pub use options::{FsOptions, Permissions};
pub use stale::Invalidator;

/// How long the host may cache names and attributes: nothing else changes
/// the file system while it is mounted here.
const TTL: Duration = Duration::from_secs(1);

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
    /// Open files created with `FOPEN_DIRECT_IO` (see `stale`).
    direct_creates: DirectCreates,
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
            direct_creates: DirectCreates::default(),
        })
    }

    /// The way to give the file system the session's notifier, which it
    /// needs to have the host forget a name (see `stale`).
    pub fn invalidator(&self) -> Invalidator {
        self.direct_creates.invalidator()
    }

    /// Runs `f` once, in the first LOOKUP request, before it is answered:
    /// the host has then finished INIT, and no file below the root can have
    /// been opened yet (opening one needs that answer). lklfuse tunes the
    /// mount's host read-ahead there.
    pub fn on_first_lookup(&mut self, f: impl FnOnce() + Send + 'static) {
        *lock(&self.first_lookup) = Some(Box::new(f));
        self.first_lookup_pending.store(true, Ordering::Release);
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
