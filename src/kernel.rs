//! Booting and halting the kernel. It boots at most once per process (its
//! globals are never reset), so this module keeps the one global state.

pub mod process;

use std::ffi::CString;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use crate::host::{self, Console};
use crate::sys;
use crate::syscall::Errno;

const NOT_BOOTED: u8 = 0;
const BOOTING: u8 = 1;
const RUNNING: u8 = 2;
const HALTED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(NOT_BOOTED);

/// Kernel command-line parameters added before boot by the layers above
/// (each attached device's `virtio_mmio.device=`), in the order added.
static BOOT_PARAMS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds `param` to the command line of the coming boot.
pub(crate) fn add_boot_param(param: String) {
    BOOT_PARAMS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(param);
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// RAM for the kernel in bytes (`mem=`).
    pub memory: u64,
    /// Extra kernel command-line parameters.
    pub cmdline: String,
    /// Where the kernel's console output goes.
    pub console: Console,
    /// Console log level (`loglevel=`); None keeps the kernel's default.
    pub loglevel: Option<u8>,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            memory: 64 << 20,
            cmdline: String::new(),
            console: Console::Silent,
            loglevel: None,
        }
    }
}

impl BootOptions {
    /// The command line handed to the kernel (the parameters of devices
    /// attached before boot included).
    pub fn command_line(&self) -> String {
        let mut line = format!("mem={}K", self.memory / 1024);
        for param in BOOT_PARAMS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            line.push(' ');
            line.push_str(param);
        }
        if let Some(level) = self.loglevel {
            line.push_str(&format!(" loglevel={level}"));
        }
        if !self.cmdline.is_empty() {
            line.push(' ');
            line.push_str(&self.cmdline);
        }
        line
    }
}

/// Host CLOCK_REALTIME in ns.
fn host_realtime_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// The kernel's CLOCK_REALTIME in ns.
fn kernel_realtime_ns() -> Option<i128> {
    let mut ts = crate::syscall::abi::Timespec::default();
    // SAFETY: a timespec the kernel fills.
    unsafe {
        crate::syscall::raw(
            crate::syscall::nr::CLOCK_GETTIME,
            [0, &mut ts as *mut _ as i64, 0, 0, 0, 0],
        )
    }
    .ok()?;
    Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

/// Host minus kernel wall clock, read with the kernel's read bracketed by
/// two host reads; the tightest of a few brackets.
pub fn wall_clock_offset_ns() -> Option<i128> {
    let mut best: Option<(i128, i128)> = None;
    for _ in 0..5 {
        let h1 = host_realtime_ns();
        let k = kernel_realtime_ns()?;
        let h2 = host_realtime_ns();
        let width = h2 - h1;
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, (h1 + h2) / 2 - k));
        }
    }
    best.map(|(_, off)| off)
}

/// Sets the kernel's CLOCK_REALTIME to the host's: the boot-time read lags
/// by the boot's duration, and programs compare kernel timestamps
/// (SO_TIMESTAMP, file times) with the host's clock. A plain settime would
/// be late by however long the call waits for the kernel's CPU, so the
/// offset is measured with bracketed reads and applied as a relative step
/// (ADJ_SETOFFSET). Both clocks then advance with the host's monotonic
/// clock, so they stay together (NTP slews the host's monotonic and wall
/// clocks alike); a host clock step is not followed.
fn sync_wall_clock() {
    let Some(off) = wall_clock_offset_ns() else {
        return;
    };
    const ADJ_SETOFFSET: u32 = 0x0100;
    const ADJ_NANO: u32 = 0x2000;
    // SAFETY: libc::timex is plain old data (x86_64's struct timex has the
    // kernel's 64-bit layout); all-zero is valid.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = ADJ_SETOFFSET | ADJ_NANO;
    // The kernel wants 0 <= nsec < 1e9 with the sign carried by seconds.
    tx.time.tv_sec = off.div_euclid(1_000_000_000) as i64;
    tx.time.tv_usec = off.rem_euclid(1_000_000_000) as i64;
    // SAFETY: a struct timex the kernel reads and updates.
    let _ = unsafe {
        crate::syscall::raw(
            crate::syscall::nr::CLOCK_ADJTIME,
            [0, &mut tx as *mut _ as i64, 0, 0, 0, 0],
        )
    };
}

/// Why the kernel did not boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootError {
    /// The kernel already booted in this process (it boots once per process).
    AlreadyBooted,
    /// The command line contains a NUL byte or is too long.
    BadCommandLine,
    /// The kernel refused to start (errno from lkl_start_kernel).
    Start(Errno),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::AlreadyBooted => {
                f.write_str("the kernel already booted in this process; it boots once per process")
            }
            BootError::BadCommandLine => {
                f.write_str("the kernel command line has a NUL byte or exceeds 4095 bytes")
            }
            BootError::Start(e) => write!(f, "the kernel failed to start: {e}"),
        }
    }
}

impl std::error::Error for BootError {}

/// The running kernel. Dropping it does not halt it: call [`Kernel::halt`].
#[derive(Debug)]
pub struct Kernel {
    _private: (),
}

impl Kernel {
    /// Boots the kernel in this process. Returns once pid 1 exists and the
    /// calling thread may make system calls (any other thread may too).
    pub fn boot(opts: BootOptions) -> Result<Kernel, BootError> {
        let line = CString::new(opts.command_line()).map_err(|_| BootError::BadCommandLine)?;
        if line.as_bytes().len() >= 4096 {
            return Err(BootError::BadCommandLine);
        }
        if STATE
            .compare_exchange(NOT_BOOTED, BOOTING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(BootError::AlreadyBooted);
        }
        host::set_console(opts.console);
        // Copies of program memory return EFAULT for a bad pointer instead
        // of crashing the program; without the handler they crash as before.
        if let Err(e) = host::uaccess::install_fault_handler() {
            eprintln!(
                "lkl: no SIGSEGV handler for the kernel's copies (errno {e}): a bad pointer will crash"
            );
        }
        sys::watch_forks();
        // Boot's hand-offs between host threads stay on one CPU.
        let pin = host::BootPin::begin();
        // SAFETY: OPS is a static table of valid host functions; `line` is a
        // NUL-terminated string the kernel copies before returning.
        let rc = unsafe { sys::lkl_start_kernel(&host::OPS, line.as_ptr()) };
        if let Some(pin) = pin {
            pin.end();
        }
        if rc < 0 {
            STATE.store(HALTED, Ordering::Release);
            return Err(BootError::Start(Errno(-rc)));
        }
        STATE.store(RUNNING, Ordering::Release);
        sync_wall_clock();
        Ok(Kernel { _private: () })
    }

    /// True while a kernel runs in this process (never in a forked child:
    /// the kernel stayed in the parent).
    pub fn is_running() -> bool {
        STATE.load(Ordering::Acquire) == RUNNING && !sys::forked()
    }

    /// Syncs file systems, stops the kernel, joins every thread it created
    /// and frees its memory. Threads blocked in kernel calls return
    /// `ESHUTDOWN`, and so does every later call.
    pub fn halt(self) -> Result<(), Errno> {
        if sys::forked() {
            return Err(Errno::ESHUTDOWN);
        }
        // SAFETY: the kernel is running (we hold its handle).
        let rc = unsafe { sys::lkl_sys_halt() };
        STATE.store(HALTED, Ordering::Release);
        if rc < 0 {
            return Err(Errno(-rc as i32));
        }
        Ok(())
    }
}

/// Interrupts the system call that kernel task `tid` (its `gettid()`) is
/// blocked in: the call returns `EINTR`, as a host call does when a signal
/// arrives. A task that is not inside a call is left alone.
///
/// Async-signal-safe: a host signal handler may call it, also on the
/// blocked thread itself (it only sets atomics and raises an IRQ).
pub fn interrupt(tid: i32) -> Result<(), Errno> {
    // SAFETY: plain integer argument; the function checks it.
    let rc = unsafe { sys::lkl_interrupt_async(tid) };
    if rc < 0 {
        Err(Errno(-rc))
    } else {
        Ok(())
    }
}
