//! The one way to the host's libc: its functions found by name, and errno.
//!
//! This library defines functions under libc's names (`read`, `open`, ...),
//! so calling one of them by name from here (`libc::read`) would call our
//! own hook again. Libc's own is the next definition after ours,
//! `dlsym(RTLD_NEXT, name)`. `libc_fn!` keeps its address in a static of
//! the call site, and lists that static in a linker section, so the
//! constructor looks every one up before `main` (`look_up_all`): after
//! that, a call costs one relaxed load and one comparison, and no lookup
//! happens in a signal handler or a forked child. A name libc does not
//! have makes the hook fail with ENOSYS, never panic (redhook would panic:
//! we do not use it for that reason). `LibcFn` holds the only `dlsym` and
//! the only cast of an address to a function in the crate.
//!
//! The other ways to the host are not hooks of ours, so they are called
//! directly: raw system calls (`libc::syscall`, where a hook wants the host
//! kernel's call itself, with no libc wrapper or hook in between), and the
//! libc functions this library does not define (`malloc`, `abort`,
//! `gettid`, ...) through the `libc` crate.

use std::ffi::{c_char, c_int};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

/// This thread's errno.
#[inline]
pub fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's errno.
#[inline]
pub fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e };
}

/// A libc call's failure: errno set to `e`, -1 returned.
#[inline]
pub fn fail<T: From<i8>>(e: c_int) -> T {
    set_errno(e);
    T::from(-1)
}

/// `LibcSlot::addr` before the lookup.
const NOT_LOOKED_UP: usize = 0;
/// `LibcSlot::addr` when libc has no such function.
const ABSENT: usize = 1;

/// A libc function's name and, once looked up, its address.
pub struct LibcSlot {
    /// The name, NUL-terminated.
    name: &'static str,
    /// Its address, `NOT_LOOKED_UP` or `ABSENT`.
    addr: AtomicUsize,
}

impl LibcSlot {
    /// The address, looked up now if it was not yet; None if absent.
    #[cold]
    fn look_up(&self) -> Option<usize> {
        let mut a = self.addr.load(Ordering::Relaxed);
        if a == NOT_LOOKED_UP {
            a = next_definition(self.name);
            self.addr.store(a, Ordering::Relaxed);
        }
        (a != ABSENT).then_some(a)
    }
}

/// Libc's function `name`, of C signature `F`.
pub struct LibcFn<F> {
    slot: LibcSlot,
    signature: PhantomData<F>,
}

impl<F: Copy> LibcFn<F> {
    /// # Safety
    /// `F` is an `unsafe extern "C" fn` type with the C signature of libc's
    /// function `name`, and `name` ends with a NUL.
    pub const unsafe fn new(name: &'static str) -> Self {
        LibcFn {
            slot: LibcSlot {
                name,
                addr: AtomicUsize::new(NOT_LOOKED_UP),
            },
            signature: PhantomData,
        }
    }

    /// Its slot, for `look_up_all`'s list.
    pub const fn slot(&self) -> &LibcSlot {
        &self.slot
    }

    /// The function, or None if libc has none of that name. Once looked
    /// up: one load and one comparison.
    #[inline]
    pub fn get(&self) -> Option<F> {
        const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<usize>()) };
        let mut a = self.slot.addr.load(Ordering::Relaxed);
        if a <= ABSENT {
            a = self.slot.look_up()?;
        }
        // SAFETY: `a` is the address dlsym gave for `name`, a function of
        // C signature F (new's contract); F is a function pointer, of the
        // size of the address (asserted above).
        Some(unsafe { std::mem::transmute_copy::<usize, F>(&a) })
    }
}

/// The address of the next definition of `name` (NUL-terminated) after
/// this library, i.e. libc's, or `ABSENT`.
fn next_definition(name: &'static str) -> usize {
    debug_assert!(name.ends_with('\0'));
    // SAFETY: `name` is NUL-terminated (LibcFn::new's contract); RTLD_NEXT
    // searches the objects loaded after this one.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast::<c_char>()) };
    if p.is_null() {
        ABSENT
    } else {
        p as usize
    }
}

extern "C" {
    // The bounds of the linker section every `libc_fn!` site puts a
    // `&'static LibcSlot` in: the linker defines `__start_X` and `__stop_X`
    // for a section whose name X is a C identifier. Only their addresses
    // are used.
    static __start_lkl_hijack_libc_fns: u8;
    static __stop_lkl_hijack_libc_fns: u8;
}

/// Looks up every libc function a `libc_fn!` site names, so that none is
/// looked up for the first time later: in a signal handler (dlsym takes the
/// loader's lock, which the interrupted code may hold) or in a forked
/// child. The constructor calls it first.
pub fn look_up_all() {
    let start = std::ptr::addr_of!(__start_lkl_hijack_libc_fns).cast::<&'static LibcSlot>();
    let stop = std::ptr::addr_of!(__stop_lkl_hijack_libc_fns).cast::<&'static LibcSlot>();
    // SAFETY: the section holds only the `&'static LibcSlot`s that
    // `libc_fn!` places there, one after another, between its bounds.
    let slots = unsafe { std::slice::from_raw_parts(start, stop.offset_from(start) as usize) };
    for slot in slots {
        slot.look_up();
    }
}

/// `libc_fn!(name, fn(A, B) -> R)`: libc's function `name` as an
/// `Option<unsafe extern "C" fn(A, B) -> R>`, kept in a static of the call
/// site (looked up by `look_up_all`, or at the site's first call).
///
/// `libc_fn!(name, fn(A, B) -> R; a, b)`: calls it with `a, b`; without it,
/// -1 and ENOSYS (integer results only).
///
/// `libc_fn!(name, fn(A, B) -> R; a, b; or x)`: the same, with `x` as the
/// result (and ENOSYS) without it (a null pointer, MAP_FAILED).
///
/// The signature written at the call site must be the C one of libc's
/// `name` (its man page's).
macro_rules! libc_fn {
    ($name:ident, fn($($t:ty),* $(,)?) -> $r:ty) => {{
        static F: $crate::hijack::host::LibcFn<unsafe extern "C" fn($($t),*) -> $r> =
            // SAFETY: the call site writes libc's signature for `name` (see
            // the macro's doc); concat! appends the NUL.
            unsafe { $crate::hijack::host::LibcFn::new(concat!(stringify!($name), "\0")) };
        // On `look_up_all`'s list.
        #[used]
        #[link_section = "lkl_hijack_libc_fns"]
        static LISTED: &$crate::hijack::host::LibcSlot = F.slot();
        F.get()
    }};
    ($name:ident, fn($($t:ty),* $(,)?) -> $r:ty; $($a:expr),*; or $fail:expr) => {
        match $crate::hijack::host::libc_fn!($name, fn($($t),*) -> $r) {
            // SAFETY: as in the arm below. (`allowed`: not trapped by the
            // system-call tier, tier/gate.rs.)
            Some(f) => $crate::hijack::tier::gate::allowed(|| unsafe { f($($a),*) }),
            None => {
                $crate::hijack::host::set_errno(libc::ENOSYS);
                $fail
            }
        }
    };
    ($name:ident, fn($($t:ty),* $(,)?) -> $r:ty; $($a:expr),* $(,)?) => {
        match $crate::hijack::host::libc_fn!($name, fn($($t),*) -> $r) {
            // SAFETY: libc's function, with the caller's arguments for it:
            // the program's own, or a path we resolved (NUL-terminated and
            // alive for the call), or a descriptor of ours. (`allowed`: not
            // trapped by the system-call tier, tier/gate.rs.)
            Some(f) => $crate::hijack::tier::gate::allowed(|| unsafe { f($($a),*) }),
            None => $crate::hijack::host::fail(libc::ENOSYS),
        }
    };
}
pub(crate) use libc_fn;

/// `host_syscall!(nr, a, b, ...)`: `libc::syscall` for a host call of ours
/// (on a placeholder, one of our eventfds, a host path we resolved), with
/// the system-call tier's selector at ALLOW: untrapped, so never routed to
/// a hook that would take a placeholder's number for the kernel
/// descriptor behind it. Use inside `unsafe`, as `libc::syscall`.
macro_rules! host_syscall {
    ($($a:expr),+ $(,)?) => {
        $crate::hijack::tier::gate::allowed(|| libc::syscall($($a),+))
    };
}
pub(crate) use host_syscall;

/// Room for a control message carrying one descriptor.
pub type OneFdControl = [u64; 4];

/// Makes `msg` carry descriptor `fd` (`SCM_RIGHTS`) in `cbuf`, which must
/// outlive the send.
pub fn attach_fd(msg: &mut libc::msghdr, cbuf: &mut OneFdControl, fd: c_int) {
    // SAFETY: CMSG_SPACE/CMSG_LEN are computations; the control buffer
    // (32 bytes) holds one cmsghdr and one int, and msg points at it.
    unsafe {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let c = libc::CMSG_FIRSTHDR(msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<c_int>(), fd);
    }
}

/// The credentials of the peer of host UNIX socket `fd` (SO_PEERCRED).
pub fn peer_cred(fd: c_int) -> Option<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as u32;
    // SAFETY: reads SO_PEERCRED into a local of its size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cred)
}

/// Closes host descriptor `fd`, one of ours (a placeholder, an eventfd),
/// with libc's `close`.
pub fn close(fd: c_int) -> c_int {
    libc_fn!(close, fn(c_int) -> c_int; fd)
}

/// A new non-blocking, close-on-exec eventfd of ours (libc's `eventfd`),
/// or Err(errno).
pub fn new_eventfd() -> Result<c_int, c_int> {
    let fd = libc_fn!(eventfd, fn(u32, c_int) -> c_int; 0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}
