//! Files created with `FOPEN_DIRECT_IO`, and the host's copy of their times.
//!
//! A CREATE opened write-only is answered with `FOPEN_DIRECT_IO` (unless
//! `create_direct` is off): the host then sends each `write` to us as it
//! happens, around its page cache, and neither marks the file's times dirty
//! (no SETATTR at close) nor asks for `security.capability` first (no
//! GETXATTR: our kernel drops capabilities on its own write path; we clear
//! the set-user-ID bits when the host asks with `FUSE_WRITE_KILL_SUIDGID`
//! and have the host forget the mode it keeps). A create then costs its
//! caller three waits: LOOKUP, CREATE, WRITE.
//!
//! The price: with the writeback cache the host keeps a regular file's
//! mtime and ctime itself and ignores ours, and a direct write does not
//! update its copy. So the host shows such a file's creation time as its
//! mtime and ctime until it forgets the inode. At RELEASE we compare the
//! file's times with those the CREATE answered; if they moved, a
//! FUSE_NOTIFY_INVAL_ENTRY for its name drops the host's dentry, and with
//! it (FUSE inodes are not cached without one) the inode, once closed
//! everywhere: the next look at the name gets the times from us. The
//! notification goes from a thread of its own (the host takes the
//! directory's lock to apply it, which a request waiting for us may hold).

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use fuser::INodeNo;

use super::inodes::stat_fd;
use super::lock;

/// What the host was told about a file created with `FOPEN_DIRECT_IO`.
pub(super) struct DirectCreate {
    /// The directory and name it was created under.
    pub(super) parent: u64,
    pub(super) name: OsString,
    /// Its mtime and ctime in the CREATE answer: (seconds, nanoseconds).
    pub(super) times: [(i64, u64); 2],
}

/// What the host is asked to forget.
pub(super) enum Forget {
    /// A name in a directory (the entry, and the inode once unused).
    Entry(u64, OsString),
    /// An inode's attributes: its mode changed behind the host's back.
    Attrs(u64),
}

/// Open descriptors of files created with `FOPEN_DIRECT_IO`, and the way
/// to ask the host to forget their entries.
#[derive(Default)]
pub(super) struct DirectCreates {
    open: Mutex<HashMap<i32, DirectCreate>>,
    /// Set once the session runs (see [`Invalidator::start`]).
    notify: Arc<OnceLock<Sender<Forget>>>,
}

/// Hands the session's notifier to the file system (which the session
/// owns by then).
pub struct Invalidator(Arc<OnceLock<Sender<Forget>>>);

impl Invalidator {
    /// Starts the thread that sends the entry invalidations; it ends when
    /// the file system is dropped.
    pub fn start(self, notifier: fuser::Notifier) {
        let (tx, rx) = channel::<Forget>();
        let spawned = std::thread::Builder::new()
            .name("lklfuse-inval".into())
            .spawn(move || {
                for f in rx {
                    // ENOENT: renamed, removed or already forgotten.
                    let _ = match f {
                        Forget::Entry(parent, name) => notifier.inval_entry(INodeNo(parent), &name),
                        Forget::Attrs(ino) => notifier.inval_inode(INodeNo(ino), -1, 0),
                    };
                }
            });
        if spawned.is_ok() {
            let _ = self.0.set(tx);
        }
    }
}

impl DirectCreates {
    pub(super) fn invalidator(&self) -> Invalidator {
        Invalidator(self.notify.clone())
    }

    /// Whether stale entries can be dropped: until then (and if the
    /// thread could not start) creates with the writeback cache stay cached.
    pub(super) fn can_invalidate(&self) -> bool {
        self.notify.get().is_some()
    }

    pub(super) fn insert(&self, fd: i32, created: DirectCreate) {
        lock(&self.open).insert(fd, created);
    }

    /// At RELEASE of `fd`: if it was created with `FOPEN_DIRECT_IO` and its
    /// times moved since, has the host forget its entry.
    pub(super) fn release(&self, fd: i32) {
        let Some(c) = lock(&self.open).remove(&fd) else {
            return;
        };
        let Ok(st) = stat_fd(fd) else {
            return;
        };
        let now = [
            (st.st_mtime, st.st_mtime_nsec),
            (st.st_ctime, st.st_ctime_nsec),
        ];
        if now != c.times {
            self.forget(Forget::Entry(c.parent, c.name));
        }
    }

    /// Has the host forget what `f` names (nothing until the session runs).
    pub(super) fn forget(&self, f: Forget) {
        if let Some(tx) = self.notify.get() {
            let _ = tx.send(f);
        }
    }
}
