//! `tier-bench`: what a system call costs through the system-call tier
//! (docs/every-syscall.md), next to the `LD_PRELOAD` path and the host.
//! Figures, never a gate. Run it three ways, back to back:
//!
//! ```text
//! target/release/tier-bench                                     # the host
//! bin/lkl-hijack.sh --single-process target/release/tier-bench  # LD_PRELOAD hooks
//! LKL_HIJACK_SYSCALLS=all bin/lkl-hijack.sh --single-process target/release/tier-bench
//! ```
//!
//! (`--single-process`: the kernel in the program; in the process-tree
//! mode every kernel call is a request to the tree's server, microseconds
//! that hide the tier's own cost.) Arguments: calls per round (20000),
//! rounds (5), and a word: only the rows whose name has it. Each line is nanoseconds per call
//! (the best of the rounds):
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
//!
//! The `raw` rows are each one `mov $nr,%eax; syscall` site of this
//! program: with the tier armed it traps once and is then rewritten
//! (docs/every-syscall.md, "Rewritten sites"), so the figure is a call
//! through a rewritten site (`LKL_HIJACK_REWRITE=0` gives the trap's).
//! The `jit` rows make the same calls from code generated at run time (an
//! anonymous page), which is never rewritten: the trap, every call. With
//! the tier armed, the library's counters follow (calls through rewritten
//! sites and through the trap).

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

/// A `mov $NR,%eax; syscall` site of its own (one per number).
#[inline(never)]
fn site<const NR: i64>(a: i64, b: i64, c: i64) -> i64 {
    let r: i64;
    // SAFETY: the calls measured here take integers and buffers of ours.
    unsafe {
        std::arch::asm!("mov eax, {nr}", "syscall", nr = const NR, lateout("rax") r,
            in("rdi") a, in("rsi") b, in("rdx") c, lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    r
}

/// A call made from code generated at run time: `mov $nr,%eax; syscall;
/// ret` in an anonymous executable page.
struct Jit(*mut u8);

type JitFn = extern "C" fn(i64, i64, i64) -> i64;

impl Jit {
    fn new() -> Option<Jit> {
        // SAFETY: a new private anonymous page of ours.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(Jit(p.cast()))
    }

    /// The function for `nr` (16 bytes each).
    fn call(&self, nr: i64) -> JitFn {
        let at = nr as usize % 256 * 16;
        let n = (nr as u32).to_le_bytes();
        let code = [0xb8, n[0], n[1], n[2], n[3], 0x0f, 0x05, 0xc3];
        // SAFETY: inside our page; then its address as a function with
        // the C convention (rdi, rsi, rdx already the call's arguments).
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), self.0.add(at), code.len());
            std::mem::transmute::<*mut u8, JitFn>(self.0.add(at))
        }
    }
}

/// The library's counters, if it is loaded (`lkl_hijack_tier_stats`).
fn tier_counters() -> Option<[u64; 5]> {
    // SAFETY: a symbol name; the function, when there, has this type.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"lkl_hijack_tier_stats".as_ptr());
        if f.is_null() {
            return None;
        }
        let f: extern "C" fn(*mut u64, usize) -> usize = std::mem::transmute(f);
        let mut c = [0u64; 5];
        f(c.as_mut_ptr(), 5);
        Some(c)
    }
}

/// Nanoseconds per call of `f`, the best of `rounds` rounds of `n`.
fn per_call(n: u32, rounds: u32, mut f: impl FnMut()) -> f64 {
    (0..rounds)
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
    let rounds: u32 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    // A third argument: only the rows whose name contains it (for a
    // profiler).
    let only = std::env::args().nth(3);
    let want = |row: &str| {
        if only.as_deref().is_none_or(|o| row.contains(o)) {
            n
        } else {
            0
        }
    };
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
    let Some(jit) = Jit::new() else {
        eprintln!("tier-bench: mmap of an executable page failed");
        std::process::exit(1);
    };
    let (jit_getppid, jit_read, jit_getsockname) = (
        jit.call(libc::SYS_getppid),
        jit.call(libc::SYS_read),
        jit.call(libc::SYS_getsockname),
    );
    let before = tier_counters();
    println!("tier-bench: {mode}, ns per call (best of {rounds} x {n})");
    let rows: [(&str, f64); 8] = [
        (
            "raw getppid",
            per_call(want("raw getppid"), rounds, || {
                site::<{ libc::SYS_getppid }>(0, 0, 0);
            }),
        ),
        (
            "jit getppid",
            per_call(want("jit getppid"), rounds, || {
                jit_getppid(0, 0, 0);
            }),
        ),
        (
            "raw read /dev/zero",
            per_call(want("raw read /dev/zero"), rounds, || {
                site::<{ libc::SYS_read }>(zero.into(), buf as i64, 1);
            }),
        ),
        (
            "jit read /dev/zero",
            per_call(want("jit read /dev/zero"), rounds, || {
                jit_read(zero.into(), buf as i64, 1);
            }),
        ),
        (
            "libc read /dev/zero",
            per_call(want("libc read /dev/zero"), rounds, || {
                // SAFETY: one byte into our buffer.
                unsafe { libc::read(zero, buf.cast(), 1) };
            }),
        ),
        (
            "raw getsockname",
            per_call(want("raw getsockname"), rounds, || {
                len = 128;
                site::<{ libc::SYS_getsockname }>(
                    sock.into(),
                    sa.as_mut_ptr() as i64,
                    &mut len as *mut libc::socklen_t as i64,
                );
            }),
        ),
        (
            "jit getsockname",
            per_call(want("jit getsockname"), rounds, || {
                len = 128;
                jit_getsockname(
                    sock.into(),
                    sa.as_mut_ptr() as i64,
                    &mut len as *mut libc::socklen_t as i64,
                );
            }),
        ),
        (
            "libc getsockname",
            per_call(want("libc getsockname"), rounds, || {
                len = 128;
                // SAFETY: our buffer and its length.
                unsafe { libc::getsockname(sock, sa.as_mut_ptr().cast(), &mut len) };
            }),
        ),
    ];
    for (what, ns) in rows.into_iter().filter(|r| want(r.0) > 0) {
        println!("  {what:<22} {ns:>9.1}");
    }
    if let (Some(a), Some(b)) = (before, tier_counters()) {
        let (fast, trap) = (b[0] - a[0], b[1] - a[1]);
        println!(
            "  routed calls: {fast} through rewritten sites, {trap} through the trap ({:.1}% rewritten); sites rewritten {}, refused {}",
            fast as f64 * 100.0 / (fast + trap).max(1) as f64,
            b[3],
            b[4]
        );
    }
}
