//! `tier-bench`: what a system call costs through the system-call tier
//! (docs/every-syscall.md), next to the `LD_PRELOAD` path and the host.
//! Figures, never a gate. Run it three ways, back to back:
//!
//! ```text
//! target/release/tier-bench                                  # the host
//! bin/lkl-hijack.sh target/release/tier-bench                # LD_PRELOAD hooks
//! LKL_HIJACK_SYSCALLS=all bin/lkl-hijack.sh target/release/tier-bench
//! ```
//!
//! Each line is nanoseconds per call (the best of five rounds):
//! - `raw getppid`: a `syscall` instruction no hook serves: the host's
//!   call, or (tier armed) trap + trampoline + router + host call;
//! - `raw read /dev/zero`: a `syscall` instruction for a hooked call on a
//!   host descriptor: the host, or (tier armed) the trap to the `read`
//!   hook, which calls libc's `read`;
//! - `libc read /dev/zero`: through the PLT: the host's libc, or our
//!   `read` hook (with the tier armed, its libc call runs with the
//!   selector at ALLOW);
//! - `raw getsockname`, `libc getsockname` on a TCP socket made by
//!   `socket()` (the kernel's when hijacked): a routed kernel call through
//!   the trap and through the hook.

use std::time::Instant;

/// A raw system call (not through libc).
fn raw(nr: i64, a: i64, b: i64, c: i64) -> i64 {
    let r: i64;
    // SAFETY: the calls measured here take integers and buffers of ours.
    unsafe {
        std::arch::asm!("syscall", inlateout("rax") nr => r, in("rdi") a, in("rsi") b,
            in("rdx") c, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r
}

/// Nanoseconds per call of `f`, the best of five rounds of `n`.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    // Routed, io_uring_setup says ENOSYS; the host says EFAULT.
    let armed = raw(425, 1, 0, 0) == -i64::from(libc::ENOSYS);
    let hijacked = std::env::var_os("LD_PRELOAD").is_some_and(|p| !p.is_empty());
    let mode = match (hijacked, armed) {
        (_, true) => "tier (syscalls=all)",
        (true, false) => "LD_PRELOAD hooks",
        (false, false) => "host",
    };
    // SAFETY: a path literal; the descriptors are ours.
    let zero = unsafe { libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY) };
    // SAFETY: as above.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    if zero < 0 || sock < 0 {
        eprintln!("tier-bench: open/socket failed");
        std::process::exit(1);
    }
    let mut byte = 0u8;
    let buf = &mut byte as *mut u8;
    let mut sa = [0u8; 128];
    let mut len: libc::socklen_t = 128;
    println!("tier-bench: {mode}, ns per call (best of 5 x {n})");
    let rows: [(&str, f64); 5] = [
        (
            "raw getppid",
            per_call(n, || {
                raw(libc::SYS_getppid, 0, 0, 0);
            }),
        ),
        (
            "raw read /dev/zero",
            per_call(n, || {
                raw(libc::SYS_read, zero.into(), buf as i64, 1);
            }),
        ),
        (
            "libc read /dev/zero",
            per_call(n, || {
                // SAFETY: one byte into our buffer.
                unsafe { libc::read(zero, buf.cast(), 1) };
            }),
        ),
        (
            "raw getsockname",
            per_call(n, || {
                len = 128;
                raw(
                    libc::SYS_getsockname,
                    sock.into(),
                    sa.as_mut_ptr() as i64,
                    &mut len as *mut libc::socklen_t as i64,
                );
            }),
        ),
        (
            "libc getsockname",
            per_call(n, || {
                len = 128;
                // SAFETY: our buffer and its length.
                unsafe { libc::getsockname(sock, sa.as_mut_ptr().cast(), &mut len) };
            }),
        ),
    ];
    for (what, ns) in rows {
        println!("  {what:<22} {ns:>9.1}");
    }
}
