//! The server's processes: which kernel process serves which host
//! process, the forks whose child has not reported in, and the host
//! processes whose end the server watches (a pidfd each, in one epoll).
//! The tree is alive while any watched process is.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lkl::kernel::process::{KProcess, KTask};
use lkl::syscall::{nr, Errno};

/// One host process of the tree.
pub struct Proc {
    /// Its host pid.
    pub pid: i32,
    /// Its kernel process's pid (the host pid where it was free).
    pub kpid: i32,
    /// The kernel process; the lock serialises entering its anchor
    /// (threads, forks, exec's closes). None once the process ended.
    kproc: Mutex<Option<KProcess>>,
    /// The kernel descriptors its next image keeps (from its exec's
    /// announcement).
    pub keep: Mutex<Option<Vec<(i32, i32)>>>,
    /// Kernel thread ids of its threads' tasks, for interrupts.
    pub threads: Mutex<Vec<i32>>,
    /// Its notifiers and the eventfds they bump.
    pub notifiers: Mutex<Vec<(i32, OwnedFd)>>,
    pub dead: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proc {
    fn new(pid: i32, kproc: KProcess) -> Proc {
        Proc {
            pid,
            kpid: kproc.pid(),
            kproc: Mutex::new(Some(kproc)),
            keep: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            notifiers: Mutex::new(Vec::new()),
            dead: AtomicBool::new(false),
        }
    }

    /// Runs `f` with the kernel process (entered by nobody else meanwhile).
    pub fn with<R>(&self, f: impl FnOnce(&KProcess) -> Result<R, Errno>) -> Result<R, Errno> {
        match lock(&self.kproc).as_ref() {
            Some(k) => f(k),
            None => Err(Errno::ESRCH),
        }
    }

    pub fn has_thread(&self, ktid: i32) -> bool {
        lock(&self.threads).contains(&ktid)
    }

    pub fn add_thread(&self, ktid: i32) {
        lock(&self.threads).push(ktid);
    }

    pub fn remove_thread(&self, ktid: i32) {
        lock(&self.threads).retain(|&t| t != ktid);
    }

    /// At exec: closes every kernel descriptor but the kept ones, and
    /// says which those are.
    pub fn exec_done(&self) -> Vec<(i32, i32)> {
        let keep = lock(&self.keep).take().unwrap_or_default();
        let mut kfds: Vec<i32> = keep.iter().map(|&(_, k)| k).collect();
        kfds.sort_unstable();
        kfds.dedup();
        let _ = self.with(|k| {
            let mut from: i64 = 0;
            for &kfd in &kfds {
                if i64::from(kfd) > from {
                    // SAFETY: integer arguments only.
                    let _ =
                        unsafe { k.call(nr::CLOSE_RANGE, [from, i64::from(kfd) - 1, 0, 0, 0, 0]) };
                }
                from = i64::from(kfd) + 1;
            }
            // SAFETY: integer arguments only.
            let _ = unsafe { k.call(nr::CLOSE_RANGE, [from, i64::from(u32::MAX), 0, 0, 0, 0]) };
            Ok(())
        });
        keep
    }

    /// The process ended: its blocked calls are interrupted, its notifiers
    /// go, and its kernel process ends (its files close when the last of
    /// its threads' tasks has ended too).
    fn end(&self) {
        self.dead.store(true, Ordering::Release);
        for &t in lock(&self.threads).iter() {
            let _ = lkl::interrupt(t);
        }
        for (id, _fd) in lock(&self.notifiers).drain(..) {
            let _ = lkl::syscall::notifier_del(id);
        }
        if let Some(k) = lock(&self.kproc).take() {
            k.exit();
        }
    }
}

/// Every process of the tree.
pub struct Registry {
    procs: Mutex<HashMap<i32, Arc<Proc>>>,
    /// Forks whose child has not reported in, by token.
    pending: Mutex<HashMap<u64, KProcess>>,
    next_token: AtomicU64,
    /// Files on their way between processes (over host UNIX sockets):
    /// the server's own kernel process and, by ticket, its descriptors.
    stash: Mutex<Option<(KProcess, HashMap<u64, i32>)>>,
    /// pidfds of watched processes, by pid (epoll's data is the pid).
    pidfds: Mutex<HashMap<i32, OwnedFd>>,
    epoll: OwnedFd,
    /// In the epoll set (data 0, no pid's): wakes the wait for ends when
    /// a process hands itself over ([`Registry::leaving`]).
    wake: OwnedFd,
    live: AtomicUsize,
    /// Set when the last watched process has ended.
    pub finished: AtomicBool,
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open with integer arguments; the result is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::ESRCH),
        ));
    }
    // SAFETY: a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

impl Registry {
    pub fn new() -> Result<Registry, Errno> {
        // SAFETY: a new epoll instance of ours.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(Errno(libc::EMFILE));
        }
        // SAFETY: a new descriptor of ours.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        // SAFETY: a new eventfd of ours.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(Errno(libc::EMFILE));
        }
        // SAFETY: a new descriptor of ours.
        let wake = unsafe { OwnedFd::from_raw_fd(wake) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: adds our eventfd to our epoll.
        if unsafe {
            libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                wake.as_raw_fd(),
                &mut ev,
            )
        } != 0
        {
            return Err(Errno(libc::ENOMEM));
        }
        Ok(Registry {
            procs: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            stash: Mutex::new(None),
            pidfds: Mutex::new(HashMap::new()),
            epoll,
            wake,
            live: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
        })
    }

    /// Watches host process `pid`: the tree lives while it does.
    pub fn watch(&self, pid: i32) -> Result<(), Errno> {
        let mut fds = lock(&self.pidfds);
        if fds.contains_key(&pid) {
            return Ok(());
        }
        let fd = pidfd_open(pid)?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: pid as u64,
        };
        // SAFETY: adds a pidfd of ours to our epoll.
        if unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        } != 0
        {
            return Err(Errno(libc::ENOMEM));
        }
        fds.insert(pid, fd);
        self.live.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    pub fn get(&self, pid: i32) -> Option<Arc<Proc>> {
        lock(&self.procs).get(&pid).cloned()
    }

    /// A first kernel process for host process `pid`.
    pub fn new_root(&self, pid: i32) -> Result<Arc<Proc>, Errno> {
        let k = KProcess::new_root(pid)?;
        self.insert(pid, k)
    }

    fn insert(&self, pid: i32, k: KProcess) -> Result<Arc<Proc>, Errno> {
        // The table stays locked from the watch to the insertion: a
        // process that has already exited (a forked child that ends
        // before its parent reports it) fires its pidfd at once, and the
        // end (`ended`, on the ends thread) must find it in the table, or
        // its kernel process, with its files, would stay for good.
        let mut procs = lock(&self.procs);
        if let Err(e) = self.watch(pid) {
            drop(procs);
            k.exit();
            return Err(e);
        }
        let p = Arc::new(Proc::new(pid, k));
        procs.insert(pid, p.clone());
        Ok(p)
    }

    /// Forks `parent`'s kernel process ahead of a host fork: the token.
    pub fn fork(&self, parent: &Proc) -> Result<u64, Errno> {
        let child = parent.with(|k| k.fork())?;
        let token = self.next_token.fetch_add(1, Ordering::AcqRel);
        lock(&self.pending).insert(token, child);
        Ok(token)
    }

    /// The fork of `token` became host process `pid` (-1: the host fork
    /// failed). Its process, if it is (now) known.
    pub fn forked(&self, token: u64, pid: i32) -> Option<Arc<Proc>> {
        // The child's hello and the parent's report race: whichever comes
        // second must find the process made by the first, so the token is
        // held until the process is in the table.
        let mut pending = lock(&self.pending);
        match (pending.remove(&token), pid) {
            (Some(k), -1) => {
                k.exit();
                None
            }
            (Some(k), pid) => self.insert(pid, k.renumbered(pid)).ok(),
            (None, pid) => self.get(pid),
        }
    }

    /// Processes, their threads' tasks, files kept in passing.
    pub fn counts(&self) -> (usize, usize, usize) {
        let procs = lock(&self.procs);
        let threads = procs.values().map(|p| lock(&p.threads).len()).sum();
        let stashed = lock(&self.stash).as_ref().map_or(0, |(_, t)| t.len());
        (procs.len(), threads, stashed)
    }

    /// True if host process `pid` is one of the tree's with the library
    /// in it now (a connection open: a child that exec'd a program run
    /// without the library has none).
    pub fn in_tree(&self, pid: i32) -> bool {
        self.get(pid).is_some_and(|p| !lock(&p.threads).is_empty())
    }

    /// Keeps a reference to the file of `from`'s kernel descriptor `kfd`
    /// until a process claims it with the ticket returned.
    pub fn stash(&self, from: &Proc, kfd: i32) -> Result<u64, Errno> {
        let mut guard = lock(&self.stash);
        if guard.is_none() {
            *guard = Some((KProcess::new_unbound()?, HashMap::new()));
        }
        let Some((k, tickets)) = guard.as_mut() else {
            return Err(Errno::ENOMEM);
        };
        // SAFETY: integer arguments only, in the server's own process.
        let sfd = unsafe {
            let pfd = k.call(nr::PIDFD_OPEN, [i64::from(from.kpid), 0, 0, 0, 0, 0])?;
            let r = k.call(nr::PIDFD_GETFD, [pfd, i64::from(kfd), 0, 0, 0, 0]);
            let _ = k.call(nr::CLOSE, [pfd, 0, 0, 0, 0, 0]);
            r?
        };
        // Unguessable enough that a ticket cannot be claimed by mistake.
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        let ticket = (self.next_token.fetch_add(1, Ordering::AcqRel) << 32) | nonce;
        tickets.insert(ticket, sfd as i32);
        Ok(ticket)
    }

    /// The file of `ticket` as a new descriptor in `task`'s table.
    pub fn claim(&self, task: &KTask, ticket: u64) -> Result<i64, Errno> {
        let mut guard = lock(&self.stash);
        let Some((k, tickets)) = guard.as_mut() else {
            return Err(Errno::EBADF);
        };
        let sfd = tickets.remove(&ticket).ok_or(Errno::EBADF)?;
        // SAFETY: integer arguments only.
        unsafe {
            let got = task
                .call(nr::PIDFD_OPEN, [i64::from(k.pid()), 0, 0, 0, 0, 0])
                .and_then(|pfd| {
                    let r = task.call(nr::PIDFD_GETFD, [pfd, i64::from(sfd), 0, 0, 0, 0]);
                    let _ = task.call(nr::CLOSE, [pfd, 0, 0, 0, 0, 0]);
                    r
                });
            let _ = k.call(nr::CLOSE, [i64::from(sfd), 0, 0, 0, 0, 0]);
            got
        }
    }

    /// Waits for watched processes to end and ends their kernel
    /// processes; returns when none is left. `on_end(pid, left)` hears of each, with
    /// the number of processes left.
    pub fn watch_ends(&self, on_end: impl Fn(i32, usize), on_finish: impl Fn()) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        while self.live.load(Ordering::Acquire) > 0 {
            // SAFETY: waits on our epoll into a local array.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    -1,
                )
            };
            for ev in events.iter().take(n.max(0) as usize) {
                let pid = ev.u64 as i32;
                if pid == 0 {
                    // `leaving`: `live` was brought down already.
                    let mut v = 0u64;
                    // SAFETY: reads our eventfd's counter into a local.
                    unsafe { libc::read(self.wake.as_raw_fd(), (&raw mut v).cast(), 8) };
                    continue;
                }
                self.ended(pid);
                on_end(pid, self.live.load(Ordering::Acquire));
            }
        }
        self.finished.store(true, Ordering::Release);
        on_finish();
    }

    /// Host process `pid` is exiting and says so (its last act, at exit):
    /// it ends now, as at its pidfd's event, so that if it was the last
    /// the server halts while it waits (tree.rs, `wait_for_halt`).
    pub fn leaving(&self, pid: i32) {
        self.ended(pid);
        let one = 1u64;
        // SAFETY: writes our eventfd's counter from a local.
        unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    fn ended(&self, pid: i32) {
        if let Some(fd) = lock(&self.pidfds).remove(&pid) {
            // SAFETY: removes a pidfd of ours from our epoll.
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
            self.live.fetch_sub(1, Ordering::AcqRel);
        }
        let p = lock(&self.procs).remove(&pid);
        if let Some(p) = p {
            p.end();
        }
    }
}
