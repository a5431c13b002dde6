//! Arming: the host's Syscall User Dispatch checked, our SIGSYS handler
//! installed, the calling thread given a block (selector, stack, `%gs`) and
//! armed; new threads' blocks from a free list, given back when their
//! thread exits.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use super::gate::{self, Block, ALLOW, BLOCK};
use super::trap::{self, raw, ARCH_SET_GS, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF};

/// The stack a routed call runs on: the kernel in the process runs its
/// calls on the calling thread's stack, so it is generous (untouched pages
/// cost nothing: MAP_NORESERVE).
const STACK: usize = 512 << 10;
const PAGE: usize = 4096;

static FREE: AtomicPtr<Block> = AtomicPtr::new(std::ptr::null_mut());
static FREE_LOCK: AtomicBool = AtomicBool::new(false);

fn lock() {
    while FREE_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
}

fn unlock() {
    FREE_LOCK.store(false, Ordering::Release);
}

/// A block for a new thread (from the free list, or a new mapping), its
/// selector at BLOCK; null if memory is short.
pub fn alloc_block(thread_owned: bool) -> *mut Block {
    lock();
    let b = FREE.load(Ordering::Relaxed);
    if !b.is_null() {
        // SAFETY: blocks on the free list are live mappings of ours.
        FREE.store(unsafe { (*b).next }, Ordering::Relaxed);
    }
    unlock();
    let b = if b.is_null() { map_block() } else { b };
    if !b.is_null() {
        // SAFETY: a block of ours, not in use.
        unsafe {
            (*b).selector = BLOCK;
            (*b).thread_owned = thread_owned.into();
            (*b).next = std::ptr::null_mut();
            (*b).twin = std::ptr::null_mut();
            (*b).swap_fs = 0;
            (*b).owner_fs = 0;
            (*b).adopted = 0;
        }
    }
    b
}

/// Gives `b` back (its thread is gone, or never ran).
pub fn free_block(b: *mut Block) {
    if b.is_null() {
        return;
    }
    lock();
    // SAFETY: a block of ours that no thread uses any more.
    unsafe { (*b).next = FREE.load(Ordering::Relaxed) };
    FREE.store(b, Ordering::Relaxed);
    unlock();
}

/// A new block: `[guard page][stack][Block page]`.
fn map_block() -> *mut Block {
    let len = PAGE + STACK + PAGE;
    let Some(base) = gate::map_anon(len) else {
        return std::ptr::null_mut();
    };
    raw(
        libc::SYS_mprotect,
        [
            base as i64,
            PAGE as i64,
            i64::from(libc::PROT_NONE),
            0,
            0,
            0,
        ],
    );
    let b = (base + PAGE + STACK) as *mut Block;
    // SAFETY: the last page of the new mapping, writable.
    unsafe {
        b.write(Block {
            selector: BLOCK,
            thread_owned: 0,
            _pad: [0; 6],
            me: b,
            stack_lo: base + PAGE,
            stack_top: b as usize,
            map: base,
            map_len: len,
            next: std::ptr::null_mut(),
            swap_fs: 0,
            _pad2: [0; 7],
            host_fs: 0,
            prog_fs: 0,
            twin: std::ptr::null_mut(),
            owner_fs: 0,
            fast_ret: 0,
            fast_calls: 0,
            all_next: std::ptr::null_mut(),
            adopted: 0,
        });
    }
    // Into the list of every block (for the counters).
    let mut head = ALL.load(Ordering::Acquire);
    loop {
        // SAFETY: our new block, not yet visible to anyone.
        unsafe { (*b).all_next = head };
        match ALL.compare_exchange_weak(head, b, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(h) => head = h,
        }
    }
    b
}

/// Every block ever mapped (through `all_next`; blocks are never unmapped).
static ALL: AtomicPtr<Block> = AtomicPtr::new(std::ptr::null_mut());

/// The calls made through rewritten sites, summed over every thread's
/// block.
pub fn fast_calls() -> u64 {
    let mut n = 0u64;
    let mut b = ALL.load(Ordering::Acquire);
    while !b.is_null() {
        // SAFETY: a block of ours (never unmapped); its counter is written
        // by its own thread only (a torn read is impossible: 8 aligned
        // bytes).
        unsafe {
            n = n.wrapping_add(std::ptr::addr_of!((*b).fast_calls).read_volatile());
            b = (*b).all_next;
        }
    }
    n
}

/// The handler's part of `exit`: the exiting thread's block goes back, if
/// it is a thread's own. Async-signal-safe (the free list's spin lock is
/// never held across a call).
fn release_current() {
    let b: usize;
    // SAFETY: the exiting thread is armed: %gs is its block.
    unsafe {
        std::arch::asm!("mov {}, qword ptr gs:[{me}]", out(reg) b, me = const gate::ME,
            options(nostack, readonly, preserves_flags));
    }
    let b = b as *mut Block;
    // SAFETY: the thread's live block.
    if !b.is_null() && unsafe { (*b).thread_owned } != 0 {
        // SAFETY: the thread's live block.
        super::twin::quit(unsafe { (*b).twin });
        free_block(b);
    }
}

/// (eax, ebx, ecx, edx) of cpuid leaf `leaf`, subleaf `sub`.
fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = std::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Whether the trampoline can keep the program's vector state by hand
/// (trap.rs, `VMODE`): XGETBV with ecx = 1 (XINUSE), SSE enabled, every
/// enabled component of the trampoline's set one it knows, and AVX512BW
/// with AVX-512's state enabled. `LKL_HIJACK_XSAVE=1` keeps XSAVE (to
/// compare). On AMD's CPUs with AVX-512 it saves without asking XINUSE
/// (`VNOX`).
fn hand_saved_vectors() -> bool {
    if std::env::var_os("LKL_HIJACK_XSAVE").is_some_and(|v| v == "1") {
        return false;
    }
    let (eax, _, _, _) = cpuid(0xd, 1);
    if eax & (1 << 2) == 0 {
        return false;
    }
    let xcr0: u64;
    // SAFETY: OSXSAVE was checked by the caller: xgetbv with ecx = 0
    // reads XCR0.
    unsafe {
        let (lo, hi): (u32, u32);
        std::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi,
            options(nostack, nomem, preserves_flags));
        xcr0 = u64::from(hi) << 32 | u64::from(lo);
    }
    if xcr0 & 0b10 == 0 {
        return false;
    }
    let (_, ebx7, _, _) = cpuid(7, 0);
    let avx512 = xcr0 & 0b1110_0000 != 0;
    // AVX512F (bit 16) and AVX512BW (bit 30).
    if avx512 && (ebx7 & (1 << 16) == 0 || ebx7 & (1 << 30) == 0) {
        return false;
    }
    trap::VAVX.store(xcr0 & 0b100 != 0, Ordering::Relaxed);
    trap::VZMM.store(avx512, Ordering::Relaxed);
    // Without asking XINUSE only on AMD's CPUs: 512-bit moves on every
    // routed call would lower the clock of some of Intel's.
    // `LKL_HIJACK_XSAVE=xgetbv` asks it anyway (to compare, and for the
    // tests).
    let (_, v1, v3, v2) = cpuid(0, 0);
    let amd = [v1, v2, v3] == [0x6874_7541, 0x6974_6e65, 0x444d_4163];
    let ask = std::env::var_os("LKL_HIJACK_XSAVE").is_some_and(|v| v == "xgetbv");
    trap::VNOX.store(avx512 && amd && !ask, Ordering::Relaxed);
    true
}

/// Arms the tier in this process, from the calling thread (the
/// constructor, after the kernel booted: the kernel's own threads stay
/// unarmed). Err: why this host cannot (the caller stops the program).
pub fn arm() -> Result<(), String> {
    let (_, _, ecx, _) = cpuid(1, 0);
    if ecx & (1 << 27) == 0 {
        return Err("syscalls=all: this CPU or kernel has no XSAVE (OSXSAVE), which the trap needs to keep the program's vector registers".into());
    }
    let (_, xsave_size, _, _) = cpuid(0xd, 0);
    let area = (xsave_size as usize).max(trap::V_AREA);
    let frame = (std::mem::size_of::<trap::Frame>() + area + 63) & !63;
    trap::VMODE.store(hand_saved_vectors(), Ordering::Relaxed);
    trap::FRAME_SIZE.store(frame + 64, Ordering::Relaxed);
    // Does the host have Syscall User Dispatch (Linux >= 5.11 with the
    // generic entry code)? Turning it off on a thread where it is off
    // succeeds exactly when it exists.
    let r = raw(
        libc::SYS_prctl,
        [
            PR_SET_SYSCALL_USER_DISPATCH,
            PR_SYS_DISPATCH_OFF,
            0,
            0,
            0,
            0,
        ],
    );
    if r != 0 {
        return Err(format!(
            "syscalls=all: the host kernel has no Syscall User Dispatch (prctl PR_SET_SYSCALL_USER_DISPATCH: {}); it needs Linux 5.11 or later on x86_64. Without it, raw system calls would silently bypass the kernel: not running. (Unset LKL_HIJACK_SYSCALLS / the config's \"syscalls\" for the LD_PRELOAD hooks alone.)",
            std::io::Error::from_raw_os_error(-r as i32)
        ));
    }
    // Our SIGSYS handler; what was there becomes the program's record.
    // SA_NODEFER: SIGSYS stays unblocked while it runs (a trap while it is
    // blocked kills). Every other signal is blocked while it runs: a
    // program's handler the host would deliver on top of it instead runs
    // once it has returned (at the trampoline's first instruction, or the
    // program's own when the call was not routed), never nested on the
    // handler's stack. That may be a small alternate stack (Rust's
    // runtime gives the loader's main thread one of 8 KiB, which a static
    // program inherits): two signal frames there and a handler of the
    // program overflowed it (busybox sh's SIGCHLD died so at exit).
    let act = gate::KSigaction {
        handler: trap::on_sigsys as *const () as usize,
        flags: (libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER) as u64 | gate::SA_RESTORER,
        restorer: trap::restorer(),
        mask: !gate::SIGSYS_BIT,
    };
    let mut old = gate::KSigaction::default();
    let r = raw(
        libc::SYS_rt_sigaction,
        [
            libc::SIGSYS.into(),
            &act as *const _ as i64,
            &mut old as *mut _ as i64,
            8,
            0,
            0,
        ],
    );
    if r != 0 {
        return Err(format!("syscalls=all: rt_sigaction(SIGSYS): errno {}", -r));
    }
    // SAFETY: our own struct.
    unsafe { gate::sigsys_kaction(&old, std::ptr::null_mut()) };
    // SIGSYS must never be blocked (inherited blocked, a trap would kill).
    let unblock: u64 = gate::SIGSYS_BIT;
    raw(
        libc::SYS_rt_sigprocmask,
        [
            libc::SIG_UNBLOCK.into(),
            &unblock as *const u64 as i64,
            0,
            8,
            0,
            0,
        ],
    );
    trap::RELEASE.store(release_current as *const () as usize, Ordering::Release);
    let b = alloc_block(false);
    if b.is_null() {
        return Err("syscalls=all: no memory for the trap's stack".into());
    }
    arm_thread(b)?;
    Ok(())
}

/// Arms the calling thread with block `b`: `%gs`, the selector (ALLOW
/// until the caller leaves our code), Syscall User Dispatch on.
fn arm_thread(b: *mut Block) -> Result<(), String> {
    let r = raw(libc::SYS_arch_prctl, [ARCH_SET_GS, b as i64, 0, 0, 0, 0]);
    if r != 0 {
        return Err(format!(
            "syscalls=all: arch_prctl(ARCH_SET_GS): errno {}",
            -r
        ));
    }
    gate::adopt(b);
    // SAFETY: our block.
    unsafe { (*b).selector = ALLOW };
    let (start, len) = trap::exempt_range();
    // SAFETY: the selector's address stays valid for the thread's life.
    let sel = unsafe { std::ptr::addr_of_mut!((*b).selector) } as i64;
    let r = raw(
        libc::SYS_prctl,
        [
            PR_SET_SYSCALL_USER_DISPATCH,
            trap::PR_SYS_DISPATCH_ON,
            start as i64,
            len as i64,
            sel,
            0,
        ],
    );
    if r != 0 {
        return Err(format!(
            "syscalls=all: prctl(PR_SET_SYSCALL_USER_DISPATCH, ON): {}",
            std::io::Error::from_raw_os_error(-r as i32)
        ));
    }
    gate::ON.store(true, Ordering::Release);
    Ok(())
}
