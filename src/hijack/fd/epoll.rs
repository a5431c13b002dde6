//! epoll over host and kernel descriptors together.
//!
//! Design. The program's epoll descriptor E is a real host epoll, and its
//! host members live there unchanged, with the program's `epoll_data`.
//! Kernel members never enter E (the host cannot poll them); the first one
//! added gives E a `Set`:
//!
//! - a private host epoll `inner` holding E itself (token [`HOST`]) and,
//!   per kernel member, an eventfd of ours (token: the member's host
//!   number). Only our tokens ever live in `inner`, so a program's data is
//!   never confused with ours and is returned exactly as stored, pointers
//!   included.
//! - per kernel member, a kernel notifier on its kernel file, with the
//!   member's own event mask, that bumps that member's eventfd whenever the
//!   kernel wakes the file with one of those events (the kernel filters the
//!   wake key, as epoll's own callback does).
//!
//! `epoll_wait(E)` on such a set follows drain -> harvest -> block with no
//! thread and no polling loop: (1) take every fired token from `inner`
//! without blocking and drain the eventfds behind them, marking those
//! members pending; (2) confirm the pending members against the kernel
//! with one zero-timeout `ppoll` (a wake is a hint, the kernel's answer is
//! the truth, so spurious wakes never reach the program); (3) harvest E's
//! host events with a zero timeout; (4) if nothing was found, block on
//! `inner` (with the caller's signal mask, atomically) and go again.
//!
//! Semantics of kernel members, as Linux's: level-triggered members that
//! were reported stay pending and are confirmed again on the next wait
//! (readiness that persists keeps being reported, with no new wake);
//! edge-triggered ones are reported once per kernel wake; EPOLLONESHOT
//! members are disarmed after one report until EPOLL_CTL_MOD; EPOLLEXCLUSIVE
//! is accepted on ADD (one waiter per set here anyway). Never more than
//! `maxevents`: a ready member that does not fit stays pending. Host and
//! kernel events take turns going first, so neither side starves.
//!
//! Closing a kernel descriptor removes it from every set (its notifier holds
//! the kernel file, which would otherwise stay open); closing E frees its set.
//!
//! Limits (documented): a set's kernel members are seen only through the
//! epoll calls: poll/select on E, or E nested in another epoll, see its
//! host members only; a thread already blocked in epoll_wait(E) when the
//! first kernel member is added sees that member from its next wait; a
//! member is keyed by its host number, so it goes away when that number is
//! closed even if a dup of the kernel descriptor is still open.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lkl::syscall::{nr, raw};

use crate::hijack::call::SIGSET_SIZE;
use crate::hijack::fdtable::{self, MAX_FDS};
use crate::hijack::host::{self, errno, fail};

/// Token of E itself in `inner`.
const HOST: u64 = u64::MAX;
/// Bits of an epoll mask that are poll events (the rest are flags).
const POLL_BITS: u32 = 0xffff;
/// Flags that are not events.
const EPOLLET: u32 = libc::EPOLLET as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
const EPOLLEXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;
/// Always reported, asked for or not.
const ALWAYS: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// `HAS_SET[E]`: E has a set (some kernel member was added once). One
/// atomic load keeps a host-only epoll on the direct path.
static HAS_SET: [AtomicBool; MAX_FDS] = [const { AtomicBool::new(false) }; MAX_FDS];

static SETS: Mutex<Option<HashMap<c_int, Arc<Set>>>> = Mutex::new(None);

fn sets() -> MutexGuard<'static, Option<HashMap<c_int, Arc<Set>>>> {
    SETS.lock().unwrap_or_else(|e| e.into_inner())
}

fn has_set(epfd: c_int) -> bool {
    usize::try_from(epfd)
        .ok()
        .and_then(|i| HAS_SET.get(i))
        .is_some_and(|f| f.load(Ordering::Acquire))
}

/// A kernel member's wake-up: our eventfd plus the kernel notifier that
/// bumps it.
struct Wake {
    efd: c_int,
    id: i32,
}

impl Wake {
    fn new(kfd: i32, events: u32) -> Result<Wake, i32> {
        let efd = host::new_eventfd()?;
        // The eventfd outlives the notifier (Drop deletes the notifier first).
        match fdtable::notifier_add(kfd, events, efd) {
            Ok(id) => Ok(Wake { efd, id }),
            Err(e) => {
                host::close(efd);
                Err(e.0)
            }
        }
    }

    fn drain(&self) {
        let mut v = 0u64;
        // SAFETY: an 8-byte read into a local from our non-blocking eventfd.
        unsafe {
            crate::hijack::host::host_syscall!(libc::SYS_read, self.efd, &mut v as *mut u64, 8)
        };
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        fdtable::notifier_del(self.id);
        host::close(self.efd);
    }
}

struct Member {
    kfd: i32,
    /// The program's mask, flags included.
    events: u32,
    data: u64,
    /// False once a ONESHOT member fired, until MOD.
    armed: bool,
    pending: bool,
    wake: Wake,
}

#[derive(Default)]
struct State {
    members: HashMap<c_int, Member>,
    /// Members to confirm against the kernel on the next wait.
    pending: VecDeque<c_int>,
    kernel_first: bool,
}

impl State {
    fn mark(&mut self, fd: c_int) {
        if let Some(m) = self.members.get_mut(&fd) {
            if !m.pending {
                m.pending = true;
                self.pending.push_back(fd);
            }
        }
    }
}

struct Set {
    epfd: c_int,
    inner: c_int,
    state: Mutex<State>,
    /// The process that made `inner`. A forked child shares the host epoll
    /// instance with it (as it shares the program's own epoll): its closes
    /// must not take wake-ups out of the parent's instance.
    owner: libc::pid_t,
}

impl Set {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A wake-up for member `fd` (kernel descriptor `kfd`) on `events`,
    /// its eventfd in `inner` under the member's token.
    fn new_wake(&self, fd: c_int, kfd: i32, events: u32) -> Result<Wake, i32> {
        let wake = Wake::new(kfd, poll_mask(events))?;
        let mut iev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        if host_ctl(self.inner, libc::EPOLL_CTL_ADD, wake.efd, &mut iev) < 0 {
            return Err(errno());
        }
        Ok(wake)
    }

    /// Takes a member's wake-up out of `inner` (in the process that made
    /// it only: in a forked child the registration is the parent's too).
    fn remove_wake(&self, wake: &Wake) {
        // SAFETY: getpid has no arguments.
        if unsafe { libc::getpid() } != self.owner {
            return;
        }
        host_ctl(
            self.inner,
            libc::EPOLL_CTL_DEL,
            wake.efd,
            std::ptr::null_mut(),
        );
    }
}

impl Drop for Set {
    fn drop(&mut self) {
        // Members' Drop deletes their notifiers and eventfds.
        self.state().members.clear();
        host::close(self.inner);
    }
}

fn host_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int {
    // SAFETY: the caller's (or our own) epoll_event, or null.
    unsafe { crate::hijack::host::host_syscall!(libc::SYS_epoll_ctl, epfd, op, fd, ev) as c_int }
}

/// E's set, made on first use.
fn set_for(epfd: c_int) -> Result<Arc<Set>, i32> {
    let mut guard = sets();
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(s) = map.get(&epfd) {
        return Ok(s.clone());
    }
    let flag = usize::try_from(epfd)
        .ok()
        .and_then(|i| HAS_SET.get(i))
        .ok_or(libc::EBADF)?;
    // SAFETY: no pointer arguments.
    let inner =
        unsafe { crate::hijack::host::host_syscall!(libc::SYS_epoll_create1, libc::EPOLL_CLOEXEC) }
            as c_int;
    if inner < 0 {
        return Err(errno());
    }
    // E must be an epoll: deleting a descriptor it does not hold says
    // ENOENT on an epoll, EINVAL on anything else.
    if host_ctl(epfd, libc::EPOLL_CTL_DEL, inner, std::ptr::null_mut()) == 0
        || errno() != libc::ENOENT
    {
        let e = errno();
        host::close(inner);
        return Err(if e == libc::ENOENT { libc::EINVAL } else { e });
    }
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: HOST,
    };
    if host_ctl(inner, libc::EPOLL_CTL_ADD, epfd, &mut ev) < 0 {
        let e = errno();
        host::close(inner);
        return Err(e);
    }
    let set = Arc::new(Set {
        epfd,
        inner,
        state: Mutex::new(State::default()),
        // SAFETY: getpid has no arguments.
        owner: unsafe { libc::getpid() },
    });
    map.insert(epfd, set.clone());
    flag.store(true, Ordering::Release);
    Ok(set)
}

/// Forgets E's set (E is being closed or its number reused).
pub fn forget_epoll(epfd: c_int) {
    if !has_set(epfd) {
        return;
    }
    let set = {
        let mut guard = sets();
        if let Some(f) = HAS_SET.get(epfd as usize) {
            f.store(false, Ordering::Release);
        }
        guard.as_mut().and_then(|m| m.remove(&epfd))
    };
    // Dropped outside the map's lock (a waiter may still hold the Arc: the
    // set then goes when it returns).
    drop(set);
}

/// Removes kernel descriptor `fd` from every set (it is being closed).
pub fn forget_member(fd: c_int) {
    let all: Vec<Arc<Set>> = match sets().as_ref() {
        Some(m) if !m.is_empty() => m.values().cloned().collect(),
        _ => return,
    };
    for set in all {
        let member = set.state().members.remove(&fd);
        if let Some(m) = member {
            set.remove_wake(&m.wake);
        }
    }
}

/// The kernel's poll mask for an epoll mask.
fn poll_mask(events: u32) -> u32 {
    events & POLL_BITS & !(libc::EPOLLWAKEUP as u32)
}

/// EPOLL_CTL_* on kernel member `fd` (kernel descriptor `kfd`) of E.
fn ctl_kernel(epfd: c_int, op: c_int, fd: c_int, kfd: i32, ev: *mut libc::epoll_event) -> c_int {
    let want = if op == libc::EPOLL_CTL_DEL {
        None
    } else if ev.is_null() {
        return fail(libc::EFAULT);
    } else {
        // SAFETY: the program's (packed) epoll_event.
        let e = unsafe { std::ptr::read_unaligned(ev) };
        Some((e.events, e.u64))
    };
    let set = match set_for(epfd) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut st = set.state();
    match (op, want) {
        (libc::EPOLL_CTL_ADD, Some((events, data))) => {
            if st.members.contains_key(&fd) {
                return fail(libc::EEXIST);
            }
            let wake = match set.new_wake(fd, kfd, events) {
                Ok(w) => w,
                Err(e) => return fail(e),
            };
            st.members.insert(
                fd,
                Member {
                    kfd,
                    events,
                    data,
                    armed: true,
                    pending: false,
                    wake,
                },
            );
            st.mark(fd);
            0
        }
        (libc::EPOLL_CTL_MOD, Some((events, data))) => {
            if events & EPOLLEXCLUSIVE != 0 {
                return fail(libc::EINVAL);
            }
            let Some(m) = st.members.get_mut(&fd) else {
                return fail(libc::ENOENT);
            };
            if m.events & EPOLLEXCLUSIVE != 0 {
                return fail(libc::EINVAL);
            }
            if poll_mask(m.events) != poll_mask(events) {
                // The notifier filters by mask: make one for the new mask.
                let wake = match set.new_wake(fd, kfd, events) {
                    Ok(w) => w,
                    Err(e) => return fail(e),
                };
                set.remove_wake(&m.wake);
                m.wake = wake;
            }
            m.events = events;
            m.data = data;
            m.armed = true;
            st.mark(fd);
            0
        }
        (libc::EPOLL_CTL_DEL, None) => match st.members.remove(&fd) {
            Some(m) => {
                set.remove_wake(&m.wake);
                0
            }
            None => fail(libc::ENOENT),
        },
        _ => fail(libc::EINVAL),
    }
}

/// Writes one event into the program's array.
fn put_event(out: *mut libc::epoll_event, i: usize, events: u32, data: u64) {
    // SAFETY: i < maxevents, the array's length the program gave; the
    // x86_64 epoll_event is packed, hence the unaligned write.
    unsafe { std::ptr::write_unaligned(out.add(i), libc::epoll_event { events, u64: data }) };
}

/// Steps 1 and 2: fired tokens, then kernel confirmation of pending members.
/// Returns (events written, E has host events).
fn harvest_kernel(
    set: &Set,
    out: *mut libc::epoll_event,
    room: usize,
) -> Result<(usize, bool), i32> {
    let mut fired = [libc::epoll_event { events: 0, u64: 0 }; 64];
    // SAFETY: our own array of 64 events, zero timeout.
    let n = unsafe {
        crate::hijack::host::host_syscall!(
            libc::SYS_epoll_pwait,
            set.inner,
            fired.as_mut_ptr(),
            fired.len() as c_int,
            0,
            std::ptr::null::<c_void>(),
            SIGSET_SIZE,
        )
    };
    if n < 0 {
        return Err(errno());
    }
    let mut st = set.state();
    let mut host = false;
    for ev in &fired[..n as usize] {
        let token = ev.u64;
        if token == HOST {
            host = true;
            continue;
        }
        let fd = token as c_int;
        if let Some(m) = st.members.get(&fd) {
            m.wake.drain();
        }
        st.mark(fd);
    }
    if st.pending.is_empty() || room == 0 {
        return Ok((0, host));
    }
    // One kernel ppoll over the pending, armed members.
    let order: Vec<c_int> = st.pending.drain(..).collect();
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(order.len());
    let mut keep: Vec<c_int> = Vec::with_capacity(order.len());
    for fd in order {
        match st.members.get_mut(&fd) {
            Some(m) if m.armed => {
                pfds.push(libc::pollfd {
                    fd: m.kfd,
                    events: poll_mask(m.events) as i16,
                    revents: 0,
                });
                keep.push(fd);
            }
            Some(m) => m.pending = false,
            None => {}
        }
    }
    if pfds.is_empty() {
        return Ok((0, host));
    }
    let zero = lkl::syscall::abi::Timespec::default();
    // SAFETY: our own pollfd array (same layout in both ABIs) and timespec.
    let r = unsafe {
        raw(
            nr::PPOLL,
            [
                pfds.as_mut_ptr() as usize as i64,
                pfds.len() as i64,
                &zero as *const _ as usize as i64,
                0,
                SIGSET_SIZE,
                0,
            ],
        )
    };
    if let Err(e) = r {
        // Put them back: nothing was reported.
        for fd in keep {
            st.pending.push_back(fd);
        }
        return Err(e.0);
    }
    let mut written = 0;
    // Reported level-triggered members go behind the ones that did not fit,
    // so a few always-ready members cannot starve the rest.
    let mut again = Vec::new();
    for (p, fd) in pfds.iter().zip(keep) {
        let Some(m) = st.members.get_mut(&fd) else {
            continue;
        };
        let ready = (p.revents as u16 as u32) & (poll_mask(m.events) | ALWAYS);
        if ready == 0 {
            m.pending = false;
            continue;
        }
        if written == room {
            // No room: stays pending, reported next time.
            st.pending.push_back(fd);
            continue;
        }
        put_event(out, written, ready, m.data);
        written += 1;
        if m.events & EPOLLONESHOT != 0 {
            m.armed = false;
            m.pending = false;
        } else if m.events & EPOLLET != 0 {
            m.pending = false;
        } else {
            // Level-triggered: confirm again on the next wait.
            again.push(fd);
        }
    }
    st.pending.extend(again);
    Ok((written, host))
}

/// Step 3: E's own (host) events, without blocking.
fn harvest_host(set: &Set, out: *mut libc::epoll_event, room: usize) -> Result<usize, i32> {
    if room == 0 {
        return Ok(0);
    }
    // SAFETY: `room` free slots at `out` in the program's array.
    let n = unsafe {
        crate::hijack::host::host_syscall!(
            libc::SYS_epoll_pwait,
            set.epfd,
            out,
            room as c_int,
            0,
            std::ptr::null::<c_void>(),
            SIGSET_SIZE,
        )
    };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// The wait on a mixed set. `deadline`: None blocks without limit;
/// `sigmask` is applied atomically around the blocking step only.
fn wait_mixed(
    set: &Set,
    out: *mut libc::epoll_event,
    max: usize,
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> c_int {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let kernel_first = {
            let mut st = set.state();
            st.kernel_first = !st.kernel_first;
            st.kernel_first
        };
        let mut n = 0;
        if kernel_first {
            match harvest_kernel(set, out, max) {
                Ok((k, _)) => n += k,
                Err(e) => return fail(e),
            }
            // SAFETY: n < max slots were used.
            match harvest_host(set, unsafe { out.add(n) }, max - n) {
                Ok(h) => n += h,
                Err(e) => return fail(e),
            }
        } else {
            // Fired tokens must still be drained first, but kernel events
            // go after the host's this time.
            let h = match harvest_host(set, out, max) {
                Ok(h) => h,
                Err(e) => return fail(e),
            };
            n += h;
            // SAFETY: as above.
            match harvest_kernel(set, unsafe { out.add(n) }, max - n) {
                Ok((k, _)) => n += k,
                Err(e) => return fail(e),
            }
        }
        if n > 0 {
            return n as c_int;
        }
        let ms: c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return 0;
                }
                // Rounded up: never wake before the deadline.
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as c_int
            }
        };
        let mut one = [libc::epoll_event { events: 0, u64: 0 }; 1];
        // SAFETY: one event of ours; the program's sigmask (or null), of
        // which the kernel reads the first 8 bytes.
        let r = unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_epoll_pwait,
                set.inner,
                one.as_mut_ptr(),
                1,
                ms,
                sigmask,
                SIGSET_SIZE,
            )
        };
        if r < 0 {
            return -1;
        }
    }
}

/// epoll_pwait on any epoll: the direct host call when E has no kernel
/// members, the mixed wait otherwise.
fn pwait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> c_int {
    let set = if has_set(epfd) {
        sets().as_ref().and_then(|m| m.get(&epfd).cloned())
    } else {
        None
    };
    let Some(set) = set else {
        let ms: c_int = match timeout {
            None => -1,
            Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as c_int,
        };
        // SAFETY: the program's arguments to the same call.
        return unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_epoll_pwait,
                epfd,
                events,
                maxevents,
                ms,
                sigmask,
                SIGSET_SIZE,
            )
        } as c_int;
    };
    if maxevents <= 0
        || maxevents as usize > (i32::MAX as usize) / std::mem::size_of::<libc::epoll_event>()
    {
        return fail(libc::EINVAL);
    }
    if events.is_null() {
        return fail(libc::EFAULT);
    }
    wait_mixed(&set, events, maxevents as usize, timeout, sigmask)
}

fn ms_timeout(timeout: c_int) -> Option<Duration> {
    (timeout >= 0).then(|| Duration::from_millis(timeout as u64))
}

/// # Safety
/// libc's contract for `epoll_create1`.
#[no_mangle]
pub unsafe extern "C" fn epoll_create1(flags: c_int) -> c_int {
    // SAFETY: no pointer arguments.
    let fd = unsafe { crate::hijack::host::host_syscall!(libc::SYS_epoll_create1, flags) } as c_int;
    if fd >= 0 {
        // A number reused behind our back (closed through a path we do not
        // see) must not inherit an old set.
        forget_epoll(fd);
    }
    fd
}

/// # Safety
/// libc's contract for `epoll_create`.
#[no_mangle]
pub unsafe extern "C" fn epoll_create(size: c_int) -> c_int {
    if size <= 0 {
        return fail(libc::EINVAL);
    }
    // SAFETY: same contract.
    unsafe { epoll_create1(0) }
}

/// # Safety
/// libc's contract for `epoll_ctl`.
#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    event: *mut libc::epoll_event,
) -> c_int {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        if fdtable::kernel_fd(epfd).is_some() {
            // A kernel descriptor is never an epoll of the program's.
            return fail(libc::EINVAL);
        }
        return ctl_kernel(epfd, op, fd, kfd, event);
    }
    host_ctl(epfd, op, fd, event)
}

/// # Safety
/// libc's contract for `epoll_wait`.
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    pwait(
        epfd,
        events,
        maxevents,
        ms_timeout(timeout),
        std::ptr::null(),
    )
}

/// # Safety
/// libc's contract for `epoll_pwait`.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const libc::sigset_t,
) -> c_int {
    pwait(epfd, events, maxevents, ms_timeout(timeout), sigmask)
}

/// # Safety
/// libc's contract for `epoll_pwait2`.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    let t = if timeout.is_null() {
        None
    } else {
        // SAFETY: the program's timespec.
        let ts = unsafe { std::ptr::read(timeout) };
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return fail(libc::EINVAL);
        }
        Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    };
    if !has_set(epfd) {
        // SAFETY: the program's arguments to the same call (ns precision kept).
        return unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_epoll_pwait2,
                epfd,
                events,
                maxevents,
                timeout,
                sigmask,
                SIGSET_SIZE,
            )
        } as c_int;
    }
    pwait(epfd, events, maxevents, t, sigmask)
}
