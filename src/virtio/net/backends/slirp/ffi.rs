//! The libslirp edge: `libslirp.so.0` loaded at run time, and one `Slirp`
//! instance wrapped in a safe, single-threaded [`Stack`].
//!
//! **Why `dlopen`.** Linking libslirp would make every binary of ours, and
//! the future `LD_PRELOAD` library, load libslirp and glib at start-up,
//! whether or not a slirp interface is configured. Here the library is
//! opened the first time a slirp backend is, with `RTLD_NOW | RTLD_LOCAL`,
//! and never closed (glib does not support being unloaded). Its absence is
//! an ordinary error ([`LoadError::NotFound`]).
//!
//! **ABI.** The structures below mirror `<slirp/libslirp.h>` of libslirp
//! 4.7 field for field (`SlirpConfig` up to its version 4, `SlirpCb` up to
//! `timer_new_opaque`); a unit test checks every offset against the header
//! on x86_64. Later libslirp versions only append fields, read only when
//! `cfg.version` asks for them, so we tell the library the highest version
//! both sides know ([`Library::cfg_version`]): 4 from libslirp 4.7, else 1
//! (every 4.x takes version 1, and nothing of versions 2 and 3 is used).
//!
//! **Threads.** libslirp has no locking: one `Slirp` must only ever be used
//! from one thread, and it calls back only from inside our calls into it,
//! on that thread. [`Stack`] is therefore neither `Send` nor `Sync`, and its
//! callbacks reach their state through shared references with `Cell` and
//! `RefCell` inside, since a callback runs while a method of the `Stack`
//! is on the stack.
//!
//! This is the one slirp file that may use `unsafe`.

#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::io;
use std::marker::PhantomData;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;
use std::time::Instant;

use super::SlirpNetwork;

/// The library's soname (Debian's `libslirp0`).
pub(super) const SONAME: &str = "libslirp.so.0";
const SONAME_C: &CStr = c"libslirp.so.0";

// `SLIRP_POLL_*`: the event bits of `SlirpAddPollCb` and
// `SlirpGetREventsCb`.
const SLIRP_POLL_IN: c_int = 1 << 0;
const SLIRP_POLL_OUT: c_int = 1 << 1;
const SLIRP_POLL_PRI: c_int = 1 << 2;
const SLIRP_POLL_ERR: c_int = 1 << 3;
const SLIRP_POLL_HUP: c_int = 1 << 4;

/// `SlirpTimerCb`.
type TimerCb = unsafe extern "C" fn(opaque: *mut c_void);
/// `SlirpAddPollCb`.
type AddPollCb = unsafe extern "C" fn(fd: c_int, events: c_int, opaque: *mut c_void) -> c_int;
/// `SlirpGetREventsCb`.
type GetREventsCb = unsafe extern "C" fn(idx: c_int, opaque: *mut c_void) -> c_int;

/// `SlirpCb` (libslirp 4.7; the last two fields are read only with
/// `cfg.version >= 4`, and only when non-NULL).
#[repr(C)]
struct SlirpCb {
    send_packet: Option<
        unsafe extern "C" fn(buf: *const c_void, len: usize, opaque: *mut c_void) -> libc::ssize_t,
    >,
    guest_error: Option<unsafe extern "C" fn(msg: *const c_char, opaque: *mut c_void)>,
    clock_get_ns: Option<unsafe extern "C" fn(opaque: *mut c_void) -> i64>,
    timer_new: Option<
        unsafe extern "C" fn(
            cb: Option<TimerCb>,
            cb_opaque: *mut c_void,
            opaque: *mut c_void,
        ) -> *mut c_void,
    >,
    timer_free: Option<unsafe extern "C" fn(timer: *mut c_void, opaque: *mut c_void)>,
    timer_mod:
        Option<unsafe extern "C" fn(timer: *mut c_void, expire_ms: i64, opaque: *mut c_void)>,
    register_poll_fd: Option<unsafe extern "C" fn(fd: c_int, opaque: *mut c_void)>,
    unregister_poll_fd: Option<unsafe extern "C" fn(fd: c_int, opaque: *mut c_void)>,
    notify: Option<unsafe extern "C" fn(opaque: *mut c_void)>,
    init_completed: Option<unsafe extern "C" fn(slirp: *mut c_void, opaque: *mut c_void)>,
    /// `SlirpTimerId` is a C enum: an `int`.
    timer_new_opaque: Option<
        unsafe extern "C" fn(id: c_int, cb_opaque: *mut c_void, opaque: *mut c_void) -> *mut c_void,
    >,
}

/// `SlirpConfig` (libslirp 4.7, versions 1 to 4). Rust's `bool` is C's
/// `_Bool`, and `in6_addr` has the C alignment (4) in the libc crate.
#[repr(C)]
struct SlirpConfig {
    version: u32,
    // Version 1.
    restricted: c_int,
    in_enabled: bool,
    vnetwork: libc::in_addr,
    vnetmask: libc::in_addr,
    vhost: libc::in_addr,
    in6_enabled: bool,
    vprefix_addr6: libc::in6_addr,
    vprefix_len: u8,
    vhost6: libc::in6_addr,
    vhostname: *const c_char,
    tftp_server_name: *const c_char,
    tftp_path: *const c_char,
    bootfile: *const c_char,
    vdhcp_start: libc::in_addr,
    vnameserver: libc::in_addr,
    vnameserver6: libc::in6_addr,
    vdnssearch: *const *const c_char,
    vdomainname: *const c_char,
    if_mtu: usize,
    if_mru: usize,
    disable_host_loopback: bool,
    enable_emu: bool,
    // Version 2.
    outbound_addr: *mut libc::sockaddr_in,
    outbound_addr6: *mut libc::sockaddr_in6,
    // Version 3.
    disable_dns: bool,
    // Version 4.
    disable_dhcp: bool,
}

/// The entry points we use, resolved once.
struct Api {
    new: unsafe extern "C" fn(*const SlirpConfig, *const SlirpCb, *mut c_void) -> *mut c_void,
    cleanup: unsafe extern "C" fn(*mut c_void),
    input: unsafe extern "C" fn(*mut c_void, *const u8, c_int),
    pollfds_fill: unsafe extern "C" fn(*mut c_void, *mut u32, AddPollCb, *mut c_void),
    pollfds_poll: unsafe extern "C" fn(*mut c_void, c_int, GetREventsCb, *mut c_void),
}

/// Why libslirp could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LoadError {
    /// `libslirp.so.0` is not installed (the dynamic loader found no file).
    NotFound,
    /// It is there but would not load (a dependency missing...): the
    /// loader's message.
    Failed(String),
    /// It loaded but lacks an entry point we need (not libslirp 4.x).
    MissingSymbol(&'static str),
}

/// libslirp, loaded.
pub(super) struct Library {
    api: Api,
    version: String,
    cfg_version: u32,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("version", &self.version)
            .field("cfg_version", &self.cfg_version)
            .finish()
    }
}

/// The process's libslirp, loaded on first use (the outcome, success or
/// not, is kept: a library installed later is not picked up).
pub(super) fn library() -> Result<&'static Library, LoadError> {
    static LIB: OnceLock<Result<Library, LoadError>> = OnceLock::new();
    LIB.get_or_init(Library::load)
        .as_ref()
        .map_err(Clone::clone)
}

/// The loader's last error message (`dlerror`), if any.
fn dlerror_text() -> String {
    // SAFETY: dlerror takes no arguments and returns NULL or a
    // NUL-terminated string valid until the next dl* call on this thread;
    // we copy it at once.
    let p = unsafe { libc::dlerror() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: `p` is non-NULL and NUL-terminated (above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Resolves `name` in `handle` as a value of type `F`.
///
/// # Safety
///
/// `F` must be an `unsafe extern "C" fn` pointer type whose signature is
/// the C prototype of `name`; `handle` must come from `dlopen`.
unsafe fn symbol<F: Copy>(handle: *mut c_void, name: &'static CStr) -> Result<F, LoadError> {
    // Only ever instantiated with fn pointer types, pointer-sized.
    assert_eq!(mem::size_of::<F>(), mem::size_of::<*mut c_void>());
    // SAFETY: `handle` is a live dlopen handle (caller) and `name` a
    // NUL-terminated string.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        return Err(LoadError::MissingSymbol(
            name.to_str().unwrap_or("(symbol)"),
        ));
    }
    // SAFETY: `p` is the non-NULL address of the function `name`, and the
    // caller guarantees `F` is a fn pointer type of its prototype; a fn
    // pointer and a data pointer have the same size and representation on
    // the platforms dlsym exists on (POSIX requires it).
    Ok(unsafe { mem::transmute_copy::<*mut c_void, F>(&p) })
}

/// The `SlirpConfig` version to announce for the library `version`
/// ("4.7.0"): 4 from 4.7 (where version 4 and `SLIRP_CONFIG_VERSION_MAX`
/// 4 arrived), else 1.
fn cfg_version_for(version: &str) -> u32 {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    if (major, minor) >= (4, 7) {
        4
    } else {
        1
    }
}

impl Library {
    fn load() -> Result<Library, LoadError> {
        // SAFETY: SONAME_C is NUL-terminated. Loading runs libslirp's and
        // glib's initialisers, which only set up their own globals.
        let handle = unsafe { libc::dlopen(SONAME_C.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            let why = dlerror_text();
            return Err(
                if why.starts_with(SONAME) && why.contains("No such file or directory") {
                    LoadError::NotFound
                } else {
                    LoadError::Failed(why)
                },
            );
        }
        // The handle is never closed (see the module doc): the library and
        // every pointer resolved from it stay valid for the process's life.
        //
        // SAFETY: `handle` is from dlopen, and for each `symbol` call the
        // fn pointer type is the prototype in libslirp.h: `Slirp
        // *slirp_new(const SlirpConfig *, const SlirpCb *, void *)`, `void
        // slirp_cleanup(Slirp *)`, `void slirp_input(Slirp *, const uint8_t
        // *, int)`, `void slirp_pollfds_fill(Slirp *, uint32_t *,
        // SlirpAddPollCb, void *)`, `void slirp_pollfds_poll(Slirp *, int,
        // SlirpGetREventsCb, void *)` and `const char
        // *slirp_version_string(void)`.
        let api = unsafe {
            Api {
                new: symbol(handle, c"slirp_new")?,
                cleanup: symbol(handle, c"slirp_cleanup")?,
                input: symbol(handle, c"slirp_input")?,
                pollfds_fill: symbol(handle, c"slirp_pollfds_fill")?,
                pollfds_poll: symbol(handle, c"slirp_pollfds_poll")?,
            }
        };
        // SAFETY: as above.
        let version_fn: Result<unsafe extern "C" fn() -> *const c_char, _> =
            unsafe { symbol(handle, c"slirp_version_string") };
        let version = match version_fn {
            Ok(f) => {
                // SAFETY: slirp_version_string takes nothing and returns a
                // static NUL-terminated string (or NULL, checked).
                let p = unsafe { f() };
                if p.is_null() {
                    String::new()
                } else {
                    // SAFETY: non-NULL, static and NUL-terminated.
                    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
                }
            }
            // Older than 4.1: there was no version function yet.
            Err(_) => String::new(),
        };
        let cfg_version = cfg_version_for(&version);
        Ok(Library {
            api,
            version,
            cfg_version,
        })
    }

    /// The library's version string ("4.7.0"; empty if it cannot say).
    pub(super) fn version(&self) -> &str {
        &self.version
    }
}

/// What a [`Stack`] calls back into, on the stack's own thread.
pub(super) trait Host {
    /// One Ethernet frame from slirp to the guest. It may be dropped if
    /// the guest cannot take it now (libslirp's contract: TCP retransmits).
    fn send_packet(&self, frame: &[u8]);
    /// A message about a frame from the guest that slirp found malformed.
    fn guest_error(&self, msg: &str);
}

/// A timer slirp made (`timer_new`); its address is the handle slirp holds.
struct Timer {
    cb: TimerCb,
    cb_opaque: *mut c_void,
    /// When it fires, in ms of [`Ctx::now_ms`]; `None` when not armed.
    expire_ms: Cell<Option<i64>>,
}

/// The state behind slirp's `opaque` pointer. It is reached through shared
/// references only (from the [`Stack`] and from callbacks nested in its
/// calls), so everything that changes sits in a `Cell` or `RefCell`, and
/// no `RefCell` borrow is held across a call into libslirp or into a timer
/// callback.
struct Ctx<H> {
    host: H,
    /// slirp keeps a pointer to its callbacks: they live here, as long as
    /// the instance.
    cb: SlirpCb,
    epoch: Instant,
    /// Every live timer (`Box::into_raw`); freed by `timer_free` or when
    /// the stack is dropped.
    timers: RefCell<Vec<NonNull<Timer>>>,
}

impl<H> Ctx<H> {
    /// slirp's clock: nanoseconds since the stack was made, plus one
    /// second, because libslirp takes a time of 0 for "not set" (its
    /// `time_fasttimo`), which a clock starting at 0 would hit.
    fn now_ns(&self) -> i64 {
        // i64 nanoseconds last 292 years.
        i64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(i64::MAX)
            .saturating_add(1_000_000_000)
    }

    fn now_ms(&self) -> i64 {
        self.now_ns() / 1_000_000
    }

    /// The live timer at `handle`, if it is one of ours.
    fn timer(&self, handle: *mut c_void) -> Option<NonNull<Timer>> {
        self.timers
            .borrow()
            .iter()
            .copied()
            .find(|t| t.as_ptr().cast::<c_void>() == handle)
    }
}

/// Runs `f` and swallows a panic: unwinding must not cross into C.
fn no_unwind<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// The `Ctx` behind slirp's `opaque`.
///
/// # Safety
///
/// `opaque` must be the pointer a live [`Stack<H>`] gave `slirp_new`.
unsafe fn ctx<'a, H>(opaque: *mut c_void) -> &'a Ctx<H> {
    // SAFETY: the caller guarantees `opaque` is the `Ctx<H>` of a live
    // stack, which stays allocated until after `slirp_cleanup`, the last
    // call that can call back; only shared references to it are ever made.
    unsafe { &*opaque.cast::<Ctx<H>>() }
}

unsafe extern "C" fn cb_send_packet<H: Host>(
    buf: *const c_void,
    len: usize,
    opaque: *mut c_void,
) -> libc::ssize_t {
    // SAFETY: slirp passes back the opaque its `Stack<H>` gave it.
    let ctx = unsafe { ctx::<H>(opaque) };
    if buf.is_null() {
        return -1;
    }
    // SAFETY: slirp passes a frame of `len` readable bytes, valid for the
    // call; we only read it.
    let frame = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    no_unwind((), || ctx.host.send_packet(frame));
    // A frame we had to drop is not an I/O error in slirp's sense.
    libc::ssize_t::try_from(len).unwrap_or(libc::ssize_t::MAX)
}

unsafe extern "C" fn cb_guest_error<H: Host>(msg: *const c_char, opaque: *mut c_void) {
    // SAFETY: slirp passes back the opaque its `Stack<H>` gave it.
    let ctx = unsafe { ctx::<H>(opaque) };
    let text = if msg.is_null() {
        String::new()
    } else {
        // SAFETY: slirp passes a NUL-terminated message valid for the call.
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    };
    no_unwind((), || ctx.host.guest_error(&text));
}

unsafe extern "C" fn cb_clock_get_ns<H: Host>(opaque: *mut c_void) -> i64 {
    // SAFETY: slirp passes back the opaque its `Stack<H>` gave it.
    unsafe { ctx::<H>(opaque) }.now_ns()
}

unsafe extern "C" fn cb_timer_new<H: Host>(
    cb: Option<TimerCb>,
    cb_opaque: *mut c_void,
    opaque: *mut c_void,
) -> *mut c_void {
    // SAFETY: slirp passes back the opaque its `Stack<H>` gave it.
    let ctx = unsafe { ctx::<H>(opaque) };
    let Some(cb) = cb else {
        return ptr::null_mut();
    };
    no_unwind(ptr::null_mut(), || {
        let timer = NonNull::from(Box::leak(Box::new(Timer {
            cb,
            cb_opaque,
            expire_ms: Cell::new(None),
        })));
        ctx.timers.borrow_mut().push(timer);
        timer.as_ptr().cast::<c_void>()
    })
}

unsafe extern "C" fn cb_timer_free<H: Host>(timer: *mut c_void, opaque: *mut c_void) {
    // SAFETY: slirp passes back the opaque its `Stack<H>` gave it.
    let ctx = unsafe { ctx::<H>(opaque) };
    let Some(t) = ctx.timer(timer) else {
        return;
    };
    ctx.timers.borrow_mut().retain(|x| *x != t);
    // SAFETY: `t` came from `Box::leak` in `cb_timer_new` and was still in
    // the live list, which no longer holds it: this is its only free.
    drop(unsafe { Box::from_raw(t.as_ptr()) });
}

unsafe extern "C" fn cb_timer_mod<H: Host>(
    timer: *mut c_void,
    expire_ms: i64,
    opaque: *mut c_void,
) {
    // SAFETY: slirp passes back the opaque its `Stack<H>` gave it.
    let ctx = unsafe { ctx::<H>(opaque) };
    if let Some(t) = ctx.timer(timer) {
        // SAFETY: `t` is in the live list, so not yet freed; only shared
        // references to a timer are made.
        unsafe { t.as_ref() }.expire_ms.set(Some(expire_ms));
    }
}

/// `register_poll_fd` and `unregister_poll_fd`: slirp calls them without a
/// NULL check, but we learn its descriptors from `slirp_pollfds_fill` before
/// every wait, so there is nothing to do.
unsafe extern "C" fn cb_poll_fd_noop(_fd: c_int, _opaque: *mut c_void) {}

/// `notify`: "kick the io-thread". slirp calls it from inside our own
/// calls, on the thread that then goes back to `poll` after refilling its
/// set, so there is nobody to wake.
unsafe extern "C" fn cb_notify_noop(_opaque: *mut c_void) {}

unsafe extern "C" fn cb_add_poll(fd: c_int, events: c_int, opaque: *mut c_void) -> c_int {
    // SAFETY: `Stack::fill` passes a pointer to a `Vec<pollfd>` it holds
    // exclusively for the duration of `slirp_pollfds_fill`, whose callback
    // this is; no other reference to it exists meanwhile.
    let fds = unsafe { &mut *opaque.cast::<Vec<libc::pollfd>>() };
    let mut wanted: libc::c_short = 0;
    if events & SLIRP_POLL_IN != 0 {
        wanted |= libc::POLLIN;
    }
    if events & SLIRP_POLL_OUT != 0 {
        wanted |= libc::POLLOUT;
    }
    if events & SLIRP_POLL_PRI != 0 {
        wanted |= libc::POLLPRI;
    }
    // POLLERR and POLLHUP are always reported.
    no_unwind(-1, || {
        fds.push(libc::pollfd {
            fd,
            events: wanted,
            revents: 0,
        });
        c_int::try_from(fds.len() - 1).unwrap_or(-1)
    })
}

unsafe extern "C" fn cb_get_revents(idx: c_int, opaque: *mut c_void) -> c_int {
    // SAFETY: `Stack::poll_done` passes a pointer to a `&[pollfd]` that
    // lives across `slirp_pollfds_poll`, whose callback this is.
    let fds: &[libc::pollfd] = unsafe { *opaque.cast::<&[libc::pollfd]>() };
    let Some(p) = usize::try_from(idx).ok().and_then(|i| fds.get(i)) else {
        return 0;
    };
    let r = p.revents;
    let mut out = 0;
    if r & libc::POLLIN != 0 {
        out |= SLIRP_POLL_IN;
    }
    if r & libc::POLLOUT != 0 {
        out |= SLIRP_POLL_OUT;
    }
    if r & libc::POLLPRI != 0 {
        out |= SLIRP_POLL_PRI;
    }
    if r & (libc::POLLERR | libc::POLLNVAL) != 0 {
        out |= SLIRP_POLL_ERR;
    }
    if r & libc::POLLHUP != 0 {
        out |= SLIRP_POLL_HUP;
    }
    out
}

fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    // `s_addr` is in network order: the octets as they are.
    libc::in_addr {
        s_addr: u32::from_ne_bytes(a.octets()),
    }
}

fn in6_addr(a: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: a.octets(),
    }
}

/// One libslirp instance, used from the thread that made it.
pub(super) struct Stack<H: Host> {
    lib: &'static Library,
    slirp: NonNull<c_void>,
    /// `Box::into_raw` of the callbacks' state, freed after
    /// `slirp_cleanup`. A raw pointer, not a `Box`, because libslirp holds
    /// it too and reaches it from callbacks while we also use it.
    ctx: NonNull<Ctx<H>>,
    /// libslirp is single-threaded: neither `Send` nor `Sync`.
    _one_thread: PhantomData<*mut ()>,
}

impl<H: Host> Stack<H> {
    /// Makes a slirp instance for `net` (already validated) whose frames
    /// and complaints go to `host`. `None` if libslirp refuses the
    /// configuration.
    pub(super) fn new(lib: &'static Library, net: &SlirpNetwork, host: H) -> Option<Self> {
        let ctx = Box::new(Ctx {
            host,
            cb: SlirpCb {
                send_packet: Some(cb_send_packet::<H>),
                guest_error: Some(cb_guest_error::<H>),
                clock_get_ns: Some(cb_clock_get_ns::<H>),
                timer_new: Some(cb_timer_new::<H>),
                timer_free: Some(cb_timer_free::<H>),
                timer_mod: Some(cb_timer_mod::<H>),
                register_poll_fd: Some(cb_poll_fd_noop),
                unregister_poll_fd: Some(cb_poll_fd_noop),
                notify: Some(cb_notify_noop),
                // NULL: slirp then uses `timer_new` (checked by libslirp
                // before use, with cfg.version >= 4).
                init_completed: None,
                timer_new_opaque: None,
            },
            epoch: Instant::now(),
            timers: RefCell::new(Vec::new()),
        });
        let ctx = NonNull::from(Box::leak(ctx));
        let (v6, prefix6, prefix6_len, host6, dns6) = match &net.ipv6 {
            Some(n) => (true, n.prefix, n.prefix_len, n.host, n.dns),
            None => (
                false,
                Ipv6Addr::UNSPECIFIED,
                0,
                Ipv6Addr::UNSPECIFIED,
                Ipv6Addr::UNSPECIFIED,
            ),
        };
        let cfg = SlirpConfig {
            version: lib.cfg_version,
            restricted: c_int::from(net.restricted),
            in_enabled: true,
            vnetwork: in_addr(net.net),
            vnetmask: in_addr(net.netmask()),
            vhost: in_addr(net.host),
            in6_enabled: v6,
            vprefix_addr6: in6_addr(prefix6),
            vprefix_len: prefix6_len,
            vhost6: in6_addr(host6),
            vhostname: ptr::null(),
            tftp_server_name: ptr::null(),
            tftp_path: ptr::null(),
            bootfile: ptr::null(),
            vdhcp_start: in_addr(net.dhcp_start),
            vnameserver: in_addr(net.dns),
            vnameserver6: in6_addr(dns6),
            vdnssearch: ptr::null(),
            vdomainname: ptr::null(),
            // 0: libslirp's defaults (1500 both).
            if_mtu: 0,
            if_mru: 0,
            disable_host_loopback: !net.host_loopback,
            enable_emu: false,
            outbound_addr: ptr::null_mut(),
            outbound_addr6: ptr::null_mut(),
            disable_dns: false,
            disable_dhcp: false,
        };
        // SAFETY: `cfg` is a complete SlirpConfig of the layout of the
        // version announced, read during the call only (strings are NULL;
        // libslirp copies what it keeps). `ctx.cb` and `ctx` itself stay
        // allocated, at the same address, until after `slirp_cleanup` (see
        // Drop), as libslirp requires of callbacks and opaque; the
        // callbacks are instantiated for this `H`. Callbacks made during
        // the call (`timer_new` for the IPv6 router advertisements) find
        // `ctx` initialised.
        let raw = unsafe {
            (lib.api.new)(
                &cfg,
                ptr::addr_of!((*ctx.as_ptr()).cb),
                ctx.as_ptr().cast::<c_void>(),
            )
        };
        match NonNull::new(raw) {
            Some(slirp) => Some(Stack {
                lib,
                slirp,
                ctx,
                _one_thread: PhantomData,
            }),
            None => {
                // SAFETY: libslirp returned no instance, so it holds no
                // pointer to `ctx`; free it (and any timer it made).
                unsafe { free_ctx(ctx) };
                None
            }
        }
    }

    fn ctx(&self) -> &Ctx<H> {
        // SAFETY: `ctx` is live until Drop, and only shared references to
        // it are made (here and in callbacks).
        unsafe { self.ctx.as_ref() }
    }

    /// The host side the callbacks use.
    pub(super) fn host(&self) -> &H {
        &self.ctx().host
    }

    /// Hands slirp one frame from the guest.
    pub(super) fn input(&self, frame: &[u8]) {
        let Ok(len) = c_int::try_from(frame.len()) else {
            return;
        };
        // SAFETY: `slirp` is live; `frame` is readable for `len` bytes for
        // the call, and libslirp copies what it keeps. Callbacks it makes
        // find `ctx` live and take shared references only.
        unsafe { (self.lib.api.input)(self.slirp.as_ptr(), frame.as_ptr(), len) };
    }

    /// Appends slirp's descriptors to `fds` and lowers `timeout_ms` (how
    /// long the caller means to wait; `u32::MAX` for ever) to what slirp's
    /// TCP timers allow.
    pub(super) fn fill(&self, fds: &mut Vec<libc::pollfd>, timeout_ms: &mut u32) {
        // SAFETY: `slirp` is live; `timeout_ms` is a live u32; `fds` is
        // exclusively borrowed for the call and reached only through the
        // opaque by `cb_add_poll`, the callback given with it.
        unsafe {
            (self.lib.api.pollfds_fill)(
                self.slirp.as_ptr(),
                timeout_ms,
                cb_add_poll,
                (fds as *mut Vec<libc::pollfd>).cast::<c_void>(),
            )
        };
    }

    /// Lets slirp serve its descriptors after `poll` filled `fds`' revents
    /// (`error`: poll failed). Also runs slirp's TCP timers.
    pub(super) fn poll_done(&self, fds: &[libc::pollfd], error: bool) {
        let view: &[libc::pollfd] = fds;
        // SAFETY: `slirp` is live; `view` (and the slice it points at)
        // outlive the call, and `cb_get_revents`, the callback given with
        // it, only reads it. Other callbacks take shared references only.
        unsafe {
            (self.lib.api.pollfds_poll)(
                self.slirp.as_ptr(),
                c_int::from(error),
                cb_get_revents,
                (&view as *const &[libc::pollfd])
                    .cast_mut()
                    .cast::<c_void>(),
            )
        };
    }

    /// Milliseconds until the next armed timer fires (0 if one is due).
    pub(super) fn next_timer_ms(&self) -> Option<u64> {
        let ctx = self.ctx();
        let now = ctx.now_ms();
        ctx.timers
            .borrow()
            .iter()
            // SAFETY: timers in the live list are not freed.
            .filter_map(|t| unsafe { t.as_ref() }.expire_ms.get())
            .min()
            .map(|at| u64::try_from(at.saturating_sub(now)).unwrap_or(0))
    }

    /// Fires every timer that is due (each disarmed first, as a one-shot).
    pub(super) fn run_timers(&self) {
        let ctx = self.ctx();
        loop {
            let now = ctx.now_ms();
            let due = ctx.timers.borrow().iter().find_map(|t| {
                // SAFETY: timers in the live list are not freed.
                let t = unsafe { t.as_ref() };
                match t.expire_ms.get() {
                    Some(at) if at <= now => {
                        t.expire_ms.set(None);
                        Some((t.cb, t.cb_opaque))
                    }
                    _ => None,
                }
            });
            // The list borrow is over: the callback may re-arm or free
            // timers.
            let Some((cb, cb_opaque)) = due else {
                return;
            };
            // SAFETY: `cb` and `cb_opaque` are what libslirp registered with
            // `timer_new` for this timer, on this stack's thread, and the
            // instance is live.
            unsafe { cb(cb_opaque) };
        }
    }
}

/// Frees a `Ctx` and the timers left in it.
///
/// # Safety
///
/// `ctx` came from `Box::leak` in [`Stack::new`], and libslirp no longer
/// holds it (the instance was never made, or was cleaned up).
unsafe fn free_ctx<H>(ctx: NonNull<Ctx<H>>) {
    // SAFETY: guaranteed by the caller; this is the only free.
    let ctx = unsafe { Box::from_raw(ctx.as_ptr()) };
    for t in ctx.timers.take() {
        // SAFETY: each live timer came from `Box::leak` and was not freed
        // (it was still in the list).
        drop(unsafe { Box::from_raw(t.as_ptr()) });
    }
}

impl<H: Host> Drop for Stack<H> {
    fn drop(&mut self) {
        // SAFETY: `slirp` is live and this is its last use; cleanup may
        // call `timer_free` and `unregister_poll_fd`, which find `ctx` live.
        unsafe { (self.lib.api.cleanup)(self.slirp.as_ptr()) };
        // SAFETY: the instance is gone, so nothing holds `ctx` any more.
        unsafe { free_ctx(self.ctx) };
    }
}

/// `poll(2)` on `fds` for `timeout_ms` (negative: no limit). An
/// interrupted wait returns 0.
pub(super) fn poll(fds: &mut [libc::pollfd], timeout_ms: c_int) -> io::Result<usize> {
    for p in fds.iter_mut() {
        p.revents = 0;
    }
    let n = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    // SAFETY: `fds` is a live, exclusively borrowed array of `n` pollfds
    // that poll may write `revents` into.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
    if r >= 0 {
        // Non-negative: fits.
        Ok(usize::try_from(r).unwrap_or(0))
    } else {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// Offsets and size printed by a C program built against
    /// `/usr/include/slirp/libslirp.h` 4.7.0 on x86_64 (gcc, `offsetof`).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn layouts_match_libslirp_h() {
        let c = [
            ("version", 0, offset_of!(SlirpConfig, version)),
            ("restricted", 4, offset_of!(SlirpConfig, restricted)),
            ("in_enabled", 8, offset_of!(SlirpConfig, in_enabled)),
            ("vnetwork", 12, offset_of!(SlirpConfig, vnetwork)),
            ("vnetmask", 16, offset_of!(SlirpConfig, vnetmask)),
            ("vhost", 20, offset_of!(SlirpConfig, vhost)),
            ("in6_enabled", 24, offset_of!(SlirpConfig, in6_enabled)),
            ("vprefix_addr6", 28, offset_of!(SlirpConfig, vprefix_addr6)),
            ("vprefix_len", 44, offset_of!(SlirpConfig, vprefix_len)),
            ("vhost6", 48, offset_of!(SlirpConfig, vhost6)),
            ("vhostname", 64, offset_of!(SlirpConfig, vhostname)),
            (
                "tftp_server_name",
                72,
                offset_of!(SlirpConfig, tftp_server_name),
            ),
            ("tftp_path", 80, offset_of!(SlirpConfig, tftp_path)),
            ("bootfile", 88, offset_of!(SlirpConfig, bootfile)),
            ("vdhcp_start", 96, offset_of!(SlirpConfig, vdhcp_start)),
            ("vnameserver", 100, offset_of!(SlirpConfig, vnameserver)),
            ("vnameserver6", 104, offset_of!(SlirpConfig, vnameserver6)),
            ("vdnssearch", 120, offset_of!(SlirpConfig, vdnssearch)),
            ("vdomainname", 128, offset_of!(SlirpConfig, vdomainname)),
            ("if_mtu", 136, offset_of!(SlirpConfig, if_mtu)),
            ("if_mru", 144, offset_of!(SlirpConfig, if_mru)),
            (
                "disable_host_loopback",
                152,
                offset_of!(SlirpConfig, disable_host_loopback),
            ),
            ("enable_emu", 153, offset_of!(SlirpConfig, enable_emu)),
            ("outbound_addr", 160, offset_of!(SlirpConfig, outbound_addr)),
            (
                "outbound_addr6",
                168,
                offset_of!(SlirpConfig, outbound_addr6),
            ),
            ("disable_dns", 176, offset_of!(SlirpConfig, disable_dns)),
            ("disable_dhcp", 177, offset_of!(SlirpConfig, disable_dhcp)),
        ];
        for (name, want, got) in c {
            assert_eq!(got, want, "SlirpConfig.{name}");
        }
        assert_eq!(mem::size_of::<SlirpConfig>(), 184);
        assert_eq!(mem::align_of::<SlirpConfig>(), 8);
        assert_eq!(offset_of!(SlirpCb, notify), 64);
        assert_eq!(offset_of!(SlirpCb, timer_new_opaque), 80);
        assert_eq!(mem::size_of::<SlirpCb>(), 88);
    }

    #[test]
    fn config_version_follows_the_library() {
        assert_eq!(cfg_version_for("4.7.0"), 4);
        assert_eq!(cfg_version_for("4.9.1"), 4);
        assert_eq!(cfg_version_for("5.0.0"), 4);
        assert_eq!(cfg_version_for("4.6.1"), 1);
        assert_eq!(cfg_version_for("4.1.0"), 1);
        assert_eq!(cfg_version_for(""), 1);
    }

    #[test]
    fn addresses_are_in_network_order() {
        let a = in_addr(Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(a.s_addr.to_ne_bytes(), [10, 0, 2, 15]);
        let a = in6_addr("fec0::2".parse().unwrap());
        assert_eq!(a.s6_addr[0..2], [0xfe, 0xc0]);
        assert_eq!(a.s6_addr[15], 2);
    }

    #[test]
    fn revents_map_to_slirp_bits() {
        let fds = [
            libc::pollfd {
                fd: 0,
                events: 0,
                revents: libc::POLLIN | libc::POLLHUP,
            },
            libc::pollfd {
                fd: 1,
                events: 0,
                revents: libc::POLLOUT | libc::POLLNVAL | libc::POLLPRI,
            },
        ];
        let view: &[libc::pollfd] = &fds;
        let opaque = (&view as *const &[libc::pollfd])
            .cast_mut()
            .cast::<c_void>();
        // SAFETY: `opaque` points at a live `&[pollfd]`, as the callback
        // requires.
        let get = |i| unsafe { cb_get_revents(i, opaque) };
        assert_eq!(get(0), SLIRP_POLL_IN | SLIRP_POLL_HUP);
        assert_eq!(get(1), SLIRP_POLL_OUT | SLIRP_POLL_ERR | SLIRP_POLL_PRI);
        assert_eq!(get(2), 0, "out of range");
        assert_eq!(get(-1), 0, "negative");

        let mut v: Vec<libc::pollfd> = Vec::new();
        let opaque = (&mut v as *mut Vec<libc::pollfd>).cast::<c_void>();
        // SAFETY: `opaque` points at a live Vec<pollfd> used by nothing
        // else during the call.
        let idx = unsafe { cb_add_poll(7, SLIRP_POLL_IN | SLIRP_POLL_PRI, opaque) };
        assert_eq!(idx, 0);
        assert_eq!(v[0].fd, 7);
        assert_eq!(v[0].events, libc::POLLIN | libc::POLLPRI);
    }
}
