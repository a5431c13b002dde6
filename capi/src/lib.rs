//! LKL's C API (`lkl.h`, `lkl_host.h`) over the `lkl` crate: `liblkl.so`
//! and `liblkl.a`.
//!
//! Every function here is a thin shim: it checks the C arguments, calls
//! the crate's layer that does the work ([`lkl::Kernel`] for booting,
//! [`lkl::disk`] for disks, [`lkl::virtio::net::backends`] and
//! [`lkl::devices`] for network devices, [`lkl::netcfg`] for addresses
//! and routes, [`lkl::config`] for the JSON config) and turns its error
//! into a negative `LKL_E*` errno. No panic crosses the boundary: each
//! entry point runs its body under [`guard`]. The reason for the last
//! failure of the calling thread is kept for `lkl_last_error()`.
//!
//! docs/c-api.md lists what differs from LKL's library and why.

#![deny(unsafe_op_in_unsafe_fn)]

mod config;
mod disk;
mod net;

use std::cell::{RefCell, UnsafeCell};
use std::ffi::{c_char, c_int, c_long, CStr, CString};
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use lkl::host::Console;
use lkl::{BootError, BootOptions, Errno, Kernel};

include!(concat!(env!("OUT_DIR"), "/errno.rs"));

/// Runs `body`, turning a panic into `fallback` (a panic must not unwind
/// into C). The panic's message was printed by the panic hook.
fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records why the calling thread's last call failed.
fn set_last_error(msg: impl Display) {
    let text = msg.to_string().replace('\0', " ");
    let c = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// A failure: its errno for the caller, its message for `lkl_last_error`.
struct Failure {
    errno: Errno,
    message: String,
}

impl Failure {
    fn new(errno: Errno, message: impl Display) -> Failure {
        Failure {
            errno,
            message: message.to_string(),
        }
    }

    /// Records the message and returns `-errno`.
    fn report(self) -> c_int {
        set_last_error(&self.message);
        -self.errno.0
    }
}

/// Runs `body` under [`guard`]; Ok(n) is returned as is, an error as its
/// negative errno (a panic as `-EIO`).
fn entry(name: &str, body: impl FnOnce() -> Result<c_int, Failure>) -> c_int {
    guard(-Errno::EIO.0, || match body() {
        Ok(n) => n,
        Err(mut f) => {
            f.message = format!("{name}: {}", f.message);
            f.report()
        }
    })
}

/// A C string argument as UTF-8 (`EINVAL` for NULL or invalid UTF-8).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::new(Errno::EINVAL, format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller vouches for the termination.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Failure::new(Errno::EINVAL, format!("{what} is not UTF-8")))
}

/// `struct lkl_host_operations`: what a C program may change before
/// `lkl_start_kernel` (LKL's table has every host operation; ours are the
/// Rust crate's own and not replaceable).
#[repr(C)]
pub struct HostOperations {
    /// Receives the kernel's console output; NULL discards it. Starts as
    /// a function writing to stderr.
    pub print: Option<unsafe extern "C" fn(*const c_char, c_int)>,
}

/// The exported table, writable from C (`lkl_host_ops.print = NULL;`).
#[repr(transparent)]
pub struct HostOpsCell(UnsafeCell<HostOperations>);

// SAFETY: C writes the table before booting, from the thread that boots;
// the boot reads it on that thread.
unsafe impl Sync for HostOpsCell {}

/// The default console: the kernel's messages on stderr (diagnostics
/// never go to a program's stdout).
unsafe extern "C" fn print_stderr(text: *const c_char, len: c_int) {
    if text.is_null() || len <= 0 {
        return;
    }
    // SAFETY: the kernel hands `len` readable bytes.
    let _ = unsafe { libc::write(2, text.cast(), len as usize) };
}

/// `lkl_host_ops`: pass its address to `lkl_start_kernel`.
#[no_mangle]
pub static lkl_host_ops: HostOpsCell = HostOpsCell(UnsafeCell::new(HostOperations {
    print: Some(print_stderr),
}));

/// The running kernel (the C API boots at most one, as the crate does).
static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// `mem=` as LKL reads it: bytes, with an optional K/M/G suffix.
fn parse_mem(v: &str) -> Option<u64> {
    let (num, shift) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 10),
        b'm' | b'M' => (&v[..v.len() - 1], 20),
        b'g' | b'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Splits a command line into our boot options (`mem=`) and the rest.
fn boot_options(line: &str, console: Console) -> Result<BootOptions, Failure> {
    let mut opts = BootOptions {
        console,
        ..Default::default()
    };
    let mut rest = Vec::new();
    for word in line.split_whitespace() {
        match word.strip_prefix("mem=") {
            Some(v) => {
                opts.memory = parse_mem(v).filter(|m| *m >= 16 << 20).ok_or_else(|| {
                    Failure::new(Errno::EINVAL, format!("bad {word}: want at least 16M"))
                })?
            }
            None => rest.push(word),
        }
    }
    opts.cmdline = rest.join(" ");
    Ok(opts)
}

/// Boots the kernel with `cmdline` (`mem=64M ...`); what `lkl.h`'s
/// `lkl_start_kernel(ops, fmt, ...)` calls once it formatted its line.
/// Returns 0, or a negative errno (`-EBUSY` if a kernel already booted in
/// this process, `-EINVAL` for a bad line or table).
///
/// # Safety
/// `ops` is NULL or `&lkl_host_ops`; `cmdline` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lkl_capi_start_kernel(
    ops: *const HostOperations,
    cmdline: *const c_char,
) -> c_int {
    entry("lkl_start_kernel", || {
        if !std::ptr::eq(ops, lkl_host_ops.0.get()) {
            return Err(Failure::new(
                Errno::EINVAL,
                "pass &lkl_host_ops (the host operations are the library's own)",
            ));
        }
        // SAFETY: `ops` is our table; C changes it only before booting.
        let print = unsafe { (*ops).print };
        // SAFETY: the caller passes a NUL-terminated line.
        let line = unsafe { c_str(cmdline, "the command line") }?;
        let console = match print {
            None => Console::Silent,
            Some(f)
                if std::ptr::fn_addr_eq(
                    f,
                    print_stderr as unsafe extern "C" fn(*const c_char, c_int),
                ) =>
            {
                Console::Stderr
            }
            Some(f) => Console::Callback(Arc::new(move |bytes: &[u8]| {
                let mut text = bytes.to_vec();
                text.push(0);
                // SAFETY: the program's print function gets a
                // NUL-terminated copy and its length.
                unsafe { f(text.as_ptr().cast(), bytes.len() as c_int) };
            })),
        };
        let opts = boot_options(line, console)?;
        let mut kernel = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
        match Kernel::boot(opts) {
            Ok(k) => {
                *kernel = Some(k);
                Ok(0)
            }
            Err(e @ BootError::AlreadyBooted) => Err(Failure::new(Errno::EBUSY, e)),
            Err(e @ BootError::BadCommandLine) => Err(Failure::new(Errno::EINVAL, e)),
            Err(BootError::Start(errno)) => Err(Failure::new(errno, "the kernel did not start")),
        }
    })
}

/// Unmounts what `lkl_mount_dev` and the config mounted, syncs, halts the
/// kernel and flushes the disk images (`lkl_sys_halt`).
#[no_mangle]
pub extern "C" fn lkl_capi_sys_halt() -> c_long {
    c_long::from(entry("lkl_sys_halt", || {
        let kernel = KERNEL.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(kernel) = kernel else {
            return Err(Failure::new(Errno::ENODEV, "the kernel is not running"));
        };
        lkl::disk::halt(kernel).map_err(|e| Failure::new(disk::errno_of(&e), e))?;
        Ok(0)
    }))
}

/// 1 while the kernel runs (`lkl_is_running`).
#[no_mangle]
pub extern "C" fn lkl_capi_is_running() -> c_int {
    guard(0, || c_int::from(Kernel::is_running()))
}

/// System call `no` with the six arguments at `params`: the result, or a
/// negative errno (`-ENODEV` before boot or after halt).
///
/// # Safety
/// `params` points to six `long`s; the pointers among them are valid for
/// what the call does with them (a bad one gives `-EFAULT`, as in Linux).
#[no_mangle]
pub unsafe extern "C" fn lkl_capi_syscall(no: c_long, params: *const c_long) -> c_long {
    guard(-c_long::from(Errno::EIO.0), || {
        if params.is_null() {
            return -c_long::from(Errno::EFAULT.0);
        }
        if !Kernel::is_running() {
            return -c_long::from(Errno::ENODEV.0);
        }
        let mut args = [0i64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            // SAFETY: the caller passes six readable longs.
            *a = unsafe { *params.add(i) };
        }
        // SAFETY: the caller vouches for what the arguments point to; the
        // kernel's copies of program memory are fault-safe.
        match unsafe { lkl::syscall::raw(no, args) } {
            Ok(r) => r,
            Err(e) => -c_long::from(e.0),
        }
    })
}

/// The text of errno `err` (either sign), as the kernel's headers word it.
#[no_mangle]
pub extern "C" fn lkl_strerror(err: c_int) -> *const c_char {
    static UNKNOWN: &CStr = c"Unknown error";
    guard(UNKNOWN.as_ptr(), || {
        let Some(n) = err.checked_abs() else {
            return UNKNOWN.as_ptr();
        };
        if n == 0 {
            return c"Success".as_ptr();
        }
        ERRNO_TEXT
            .iter()
            .find(|(e, _)| *e == n)
            .map(|(_, t)| t.as_ptr())
            .unwrap_or(UNKNOWN.as_ptr())
    })
}

/// Prints `msg: <text of err>` to stderr (`lkl_perror`).
///
/// # Safety
/// `msg` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lkl_perror(msg: *const c_char, err: c_int) {
    guard((), || {
        // SAFETY: lkl_strerror returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(lkl_strerror(err)) }.to_string_lossy();
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        match unsafe { c_str(msg, "msg") } {
            Ok(m) => eprintln!("{m}: {text}"),
            Err(_) => eprintln!("{text}"),
        }
    })
}

/// Why the calling thread's last failing call of this library failed, in
/// one line ("" if none failed). Ours; valid until the thread's next call.
#[no_mangle]
pub extern "C" fn lkl_last_error() -> *const c_char {
    guard(c"".as_ptr(), || LAST_ERROR.with(|e| e.borrow().as_ptr()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_sizes() {
        assert_eq!(parse_mem("64M"), Some(64 << 20));
        assert_eq!(parse_mem("65536k"), Some(64 << 20));
        assert_eq!(parse_mem("1G"), Some(1 << 30));
        assert_eq!(parse_mem("100"), Some(100));
        assert_eq!(parse_mem("M"), None);
        assert_eq!(parse_mem("12Q"), None);
    }

    #[test]
    fn command_line_split() {
        let o = boot_options("mem=32M loglevel=8 ip=dhcp", Console::Silent).ok();
        let o = o.expect("a good line");
        assert_eq!(o.memory, 32 << 20);
        assert_eq!(o.cmdline, "loglevel=8 ip=dhcp");
        assert!(boot_options("mem=1M", Console::Silent).is_err());
    }

    #[test]
    fn strerror_texts() {
        let t = |e| {
            // SAFETY: lkl_strerror returns static NUL-terminated strings.
            unsafe { CStr::from_ptr(lkl_strerror(e)) }
                .to_str()
                .unwrap_or("")
        };
        assert_eq!(t(-2), "No such file or directory");
        assert_eq!(t(2), "No such file or directory");
        assert_eq!(t(0), "Success");
        assert_eq!(t(99999), "Unknown error");
        assert_eq!(t(i32::MIN), "Unknown error");
    }
}
