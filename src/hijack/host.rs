//! The real libc file functions, each found with `dlsym(RTLD_NEXT)` the
//! first time its hook needs it and kept in a static of that call site (so
//! the file hooks do not grow the shared list in real.rs). A symbol that is
//! not there makes the hook fail with ENOSYS, never panic.

use std::ffi::c_char;

/// The address of the next definition of `name` (NUL-terminated) after
/// this library, or 1 if there is none (0 means "not looked up yet").
pub fn lookup(name: &'static str) -> usize {
    // SAFETY: `name` is NUL-terminated (the macro appends it); RTLD_NEXT
    // finds the definition after ours, i.e. libc's.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast::<c_char>()) };
    if p.is_null() {
        1
    } else {
        p as usize
    }
}

/// `real!("name", fn(A, B) -> R)`: the real function as an
/// `Option<unsafe extern "C" fn(A, B) -> R>`.
macro_rules! real {
    ($name:literal, fn($($t:ty),*) -> $r:ty) => {{
        use std::sync::atomic::{AtomicUsize, Ordering};
        static ADDR: AtomicUsize = AtomicUsize::new(0);
        let mut a = ADDR.load(Ordering::Relaxed);
        if a == 0 {
            a = $crate::hijack::host::lookup(concat!($name, "\0"));
            ADDR.store(a, Ordering::Relaxed);
        }
        if a == 1 {
            None
        } else {
            // SAFETY: `a` is the address dlsym gave for the libc function
            // of that name, whose C signature this is.
            Some(unsafe { std::mem::transmute::<usize, unsafe extern "C" fn($($t),*) -> $r>(a) })
        }
    }};
}
pub(crate) use real;

/// `host!("name", fn(A, B) -> R; a, b)`: calls the real function with
/// these arguments; -1 and ENOSYS if libc has none (integer results only).
macro_rules! host {
    ($name:literal, fn($($t:ty),*) -> $r:ty; $($a:expr),*) => {
        match $crate::hijack::host::real!($name, fn($($t),*) -> $r) {
            // SAFETY: the real libc function, with the program's arguments
            // (or a path we resolved, NUL-terminated and alive for the call).
            Some(f) => unsafe { f($($a),*) },
            None => {
                $crate::hijack::fs::files::set_errno(libc::ENOSYS);
                -1 as $r
            }
        }
    };
}
pub(crate) use host;
