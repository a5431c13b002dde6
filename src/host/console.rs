//! Where the kernel's console (printk) goes. Silent unless asked; the last
//! few KiB are always kept so a kernel panic can still be explained.

use std::collections::VecDeque;
use std::ffi::c_char;
use std::ffi::c_int;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

/// Lines of kernel output kept for a panic report.
const TAIL_BYTES: usize = 8 << 10;

/// A function that receives console output.
pub type ConsoleFn = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// A console sink chosen at boot.
#[derive(Clone, Default)]
pub enum Console {
    /// Discard (the default).
    #[default]
    Silent,
    /// Write to the process's stderr.
    Stderr,
    /// Keep everything in memory.
    Buffer(ConsoleBuffer),
    /// Hand every chunk to a function (which must not call into the kernel).
    Callback(ConsoleFn),
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Console::Silent => f.write_str("Silent"),
            Console::Stderr => f.write_str("Stderr"),
            Console::Buffer(_) => f.write_str("Buffer"),
            Console::Callback(_) => f.write_str("Callback"),
        }
    }
}

/// Shared in-memory console contents.
#[derive(Clone, Default, Debug)]
pub struct ConsoleBuffer(Arc<Mutex<Vec<u8>>>);

impl ConsoleBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything the kernel printed so far.
    pub fn contents(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn push(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
    }
}

static CONSOLE: OnceLock<Console> = OnceLock::new();
static TAIL: Mutex<VecDeque<u8>> = Mutex::new(VecDeque::new());

pub(crate) fn set_console(console: Console) {
    let _ = CONSOLE.set(console);
}

fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: writes from a valid slice to fd 2.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// # Safety
/// `s` points to `len` readable bytes.
pub(super) unsafe extern "C" fn print(s: *const c_char, len: c_int) {
    if s.is_null() || len <= 0 {
        return;
    }
    // SAFETY: see the function's contract.
    let bytes = unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len as usize) };
    {
        let mut tail = TAIL.lock().unwrap_or_else(|e| e.into_inner());
        tail.extend(bytes);
        let excess = tail.len().saturating_sub(TAIL_BYTES);
        tail.drain(..excess);
    }
    match CONSOLE.get() {
        None | Some(Console::Silent) => {}
        Some(Console::Stderr) => write_stderr(bytes),
        Some(Console::Buffer(b)) => b.push(bytes),
        Some(Console::Callback(f)) => {
            // A panicking callback must not unwind into the kernel.
            let _ = catch_unwind(AssertUnwindSafe(|| f(bytes)));
        }
    }
}

pub(super) extern "C" fn panic() {
    if !matches!(CONSOLE.get(), Some(Console::Stderr)) {
        let tail = TAIL.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = tail.as_slices();
        write_stderr(b"lkl: kernel console before the panic:\n");
        write_stderr(a);
        write_stderr(b);
    }
    write_stderr(b"lkl: kernel panic: aborting the process\n");
    std::process::abort();
}
