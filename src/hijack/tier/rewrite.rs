//! Rewriting hot system-call sites: after the first trap at a `syscall`
//! instruction of the program, if the code around it can be proven safe
//! to patch, its entry is turned into a jump to a stub of ours, so that
//! later calls there skip the SIGSYS trap (about 3 µs) and enter the same
//! trampoline and router directly.
//!
//! What a rewritten site looks like. The instructions just before the
//! `syscall` that only move values into registers (`mov $nr,%eax`; Go's
//! `MOVQ BX, DI` and the others of `runtime/internal/syscall.Syscall6`;
//! glibc's `syscall()` shuffle) form a run; the `syscall` itself is never
//! overwritten (a thread whose call is restarted after a signal, or which
//! is paused just before it, executes it as it is: it traps as before).
//! - Run's first instruction 5 bytes or longer (`b8 imm32`): it becomes
//!   `jmp rel32` to the stub. No thread can be inside it.
//! - Shorter (Go's 3-byte moves): its first 2 bytes become `jmp rel8` to
//!   5 bytes of the alignment padding after the function (nops or int3
//!   nobody executes), which become `jmp rel32` to the stub. A thread
//!   paused after the first instruction runs the original bytes.
//!
//! The stub (one per site, in a page mapped within ±2 GiB of the site)
//! runs the run's instructions (copies: none of them is rip-relative or a
//! branch), then checks, with `rcx` and `r11` only (the `syscall` clobbers
//! both anyway): `%gs` is a block of ours, its selector says BLOCK, and its
//! `owner_fs` is this thread's `%fs` base (a thread our own code created
//! inherits `%gs` without being armed: it must not take that block). If
//! so it jumps to `lkl_tier_fast` (trap.rs) with the return address in
//! `rcx`, which builds the same frame the SIGSYS handler builds and enters
//! the same trampoline: one router, one decision, nothing routed twice.
//! There, the calls the router would give the host as they are and that
//! touch no state of ours (`DIRECT`: futex, sched_yield, nanosleep,
//! clock_nanosleep, madvise, getpid, gettid, getppid, getrandom: none has
//! a hook, none is the tier's or the loader's own) are issued at once with
//! the selector at ALLOW around them, on the program's stack, without
//! the frame and the vector state: the router's decision, without the
//! router.
//! Otherwise it jumps back to the site's own `syscall` (selector ALLOW: the
//! host's, as before; unarmed: the host's; a mismatch: the trap).
//!
//! What is proven before a site is patched (anything else keeps the trap):
//! - the site is in a private, file-backed, executable and not writable
//!   mapping (code generated at run time, anonymous memory, is never
//!   patched), not in the exempt range, and its bytes are the file's;
//! - the file's symbol table (`.symtab`, else `.dynsym`) has a function
//!   covering it, and decoding that function from its start reaches an
//!   instruction boundary at the run's start and at the `syscall`;
//! - no branch of that function targets the bytes overwritten (other than
//!   the run's first byte) or the padding used;
//! - with the padding: the function's last instruction does not fall
//!   through, and the gap up to the next symbol decodes as nops/int3;
//! - a number fixed by the run (`mov $nr,%eax`) is not `rt_sigreturn` or
//!   `exit` (those never leave the trap); `lkl_tier_fast` checks the same
//!   for numbers set elsewhere.
//!
//! How the patch is made with other threads running the same code: the
//! padding (which no thread executes) is written first; the jump at the
//! run's start is then one `lock cmpxchg` of the 8 bytes around it, inside
//! one cache line (a site whose jump would cross a line keeps the trap),
//! so every other processor fetches either the old instruction or the new
//! jump, never a mix: x86 keeps instruction fetch coherent with stores
//! (cross-modifying code), and an atomic store changes the bytes at once.
//! Then `membarrier(PRIVATE_EXPEDITED_SYNC_CORE)`, when the host has it,
//! serialises every thread's instruction stream. The page is made writable
//! for the store only and gets its original protection back (`mprotect`
//! never takes execute away meanwhile).
//!
//! Everything here runs in the router (selector ALLOW, on the thread's own
//! stack), also on threads with no TLS of the library's (a static
//! program's), after the program's call was made and before it returns:
//! raw system calls through the exempt range, no allocation (a `malloc`
//! here may move the heap's break while the program's `brk` wrapper is
//! about to record the one it got), no TLS, no libc; one thread analyses
//! at a time (a busy lock just leaves the site for its next trap).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction, OpKind, Register};

use super::gate::{self, Block};
use super::trap::raw;

/// Rewriting is on (the tier armed, `LKL_HIJACK_REWRITE` not 0, the CPU
/// has FSGSBASE for the stubs' `rdgsbase`/`rdfsbase`).
pub static ON: AtomicBool = AtomicBool::new(false);
/// Counters printed at exit (`LKL_HIJACK_REWRITE=stats`).
static STATS: AtomicBool = AtomicBool::new(false);
/// `membarrier(PRIVATE_EXPEDITED_SYNC_CORE)` registered.
static SYNC_CORE: AtomicBool = AtomicBool::new(false);

// Routed calls that came through a rewritten site: counted in each
// thread's block (`Block::fast_calls`, no shared cache line), summed by
// `arm::fast_calls`.
/// Routed calls that came through the trap.
pub static TRAPPED: AtomicU64 = AtomicU64::new(0);
/// Of those, the ones at a site that was already rewritten (a thread
/// paused before its `syscall`, a thread whose `%fs` changed) or was
/// refused: the trap calls left in steady state.
pub static TRAPPED_KNOWN: AtomicU64 = AtomicU64::new(0);
/// Sites rewritten, sites refused.
static PATCHED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// The calls `lkl_tier_fast` issues to the host itself (see the module's
/// comment; the list in its assembly, trap.rs, is this one, and
/// tests/hijack_rewrite.rs checks that and that the router has no arm for
/// any of them).
#[allow(dead_code)]
pub const DIRECT: [u64; 9] = [202, 24, 35, 230, 28, 39, 186, 110, 318];

/// The offset of `Block::owner_fs` (the stubs compare it).
pub const B_OWNER: usize = std::mem::offset_of!(Block, owner_fs);

/// Whether rewriting is on.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE and its registration.
const MEMBARRIER_SYNC_CORE: i64 = 1 << 5;
const MEMBARRIER_REGISTER_SYNC_CORE: i64 = 1 << 6;
/// HWCAP2_FSGSBASE (asm/hwcap2.h).
const HWCAP2_FSGSBASE: u64 = 1 << 1;
/// MAP_FIXED_NOREPLACE (Linux >= 4.17).
const MAP_FIXED_NOREPLACE: i64 = 0x10_0000;

/// Reads `LKL_HIJACK_REWRITE` (`1`, the default; `0` off; `stats`: on, and
/// the counters on stderr at exit) once the tier is armed (the
/// constructor). Err: a value it does not know.
pub fn init() -> Result<(), String> {
    // CPUID.(EAX=0DH,ECX=1):EAX bit 0: XSAVEOPT (for the trampoline,
    // trap.rs).
    let opt = std::arch::x86_64::__cpuid_count(0xd, 1).eax & 1 != 0;
    super::trap::XSAVEOPT.store(opt, Ordering::Relaxed);
    let v = std::env::var_os("LKL_HIJACK_REWRITE");
    let v = v.as_deref().and_then(|v| v.to_str());
    let stats = match v {
        None | Some("") | Some("1") => false,
        Some("0") => return Ok(()),
        Some("stats") => true,
        Some(other) => {
            return Err(format!(
                "LKL_HIJACK_REWRITE: {other:?} is not \"1\" (rewrite hot system-call sites, the default), \"0\" (keep every call on the trap) or \"stats\" (rewrite, and print the counters at exit)"
            ))
        }
    };
    // SAFETY: getauxval has no preconditions.
    if unsafe { libc::getauxval(libc::AT_HWCAP2) } & HWCAP2_FSGSBASE == 0 {
        if stats {
            say(b"rewrite: off: this CPU or kernel has no FSGSBASE");
        }
        return Ok(());
    }
    // The decoder builds its tables on first use (an allocation): here, in
    // the constructor, never in the middle of a program's call (its brk
    // wrapper would record a break older than the one malloc just set).
    let _ = Decoder::with_ip(64, &[0x90], 0, DecoderOptions::NONE).decode();
    let r = raw(
        libc::SYS_membarrier,
        [MEMBARRIER_REGISTER_SYNC_CORE, 0, 0, 0, 0, 0],
    );
    SYNC_CORE.store(r == 0, Ordering::Relaxed);
    STATS.store(stats, Ordering::Relaxed);
    ON.store(true, Ordering::Release);
    Ok(())
}

/// One line on stderr, prefixed (no allocation: a stack buffer).
fn say(msg: &[u8]) {
    let mut b = Line::new();
    b.s(b"lkl-hijack: ");
    b.s(msg);
    b.flush();
}

/// A line built in a stack buffer, written with one raw `write(2)`.
struct Line {
    buf: [u8; 512],
    n: usize,
}

impl Line {
    fn new() -> Self {
        Line {
            buf: [0; 512],
            n: 0,
        }
    }
    fn s(&mut self, t: &[u8]) -> &mut Self {
        for &c in t {
            if self.n < self.buf.len() - 1 {
                self.buf[self.n] = c;
                self.n += 1;
            }
        }
        self
    }
    fn u(&mut self, mut v: u64) -> &mut Self {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.s(&d[i..])
    }
    fn x(&mut self, v: u64) -> &mut Self {
        let mut d = [0u8; 18];
        d[0] = b'0';
        d[1] = b'x';
        for i in 0..16 {
            let nib = (v >> ((15 - i) * 4)) & 0xf;
            d[2 + i] = b"0123456789abcdef"[nib as usize];
        }
        let first = (2..17).find(|&i| d[i] != b'0').unwrap_or(17);
        let mut out = [0u8; 18];
        out[0] = b'0';
        out[1] = b'x';
        let len = 18 - first;
        out[2..2 + len].copy_from_slice(&d[first..]);
        self.s(&out[..2 + len])
    }
    fn flush(&mut self) {
        self.s(b"\n");
        self.buf[self.n - 1] = b'\n';
        raw(
            libc::SYS_write,
            [2, self.buf.as_ptr() as i64, self.n as i64, 0, 0, 0],
        );
    }
}

/// The counters: [calls through rewritten sites, calls through the trap,
/// of which at sites already known (rewritten or refused), sites
/// rewritten, sites refused].
pub fn counters() -> [u64; 5] {
    [
        super::arm::fast_calls(),
        TRAPPED.load(Ordering::Relaxed),
        TRAPPED_KNOWN.load(Ordering::Relaxed),
        PATCHED.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed),
    ]
}

/// The counters for a program or a benchmark: writes up to `n` of them
/// (see `counters`) to `out`, returns how many there are.
///
/// # Safety
/// `out` is valid for `n` u64s (or null with `n` 0).
#[no_mangle]
pub unsafe extern "C" fn lkl_hijack_tier_stats(out: *mut u64, n: usize) -> usize {
    let c = counters();
    if !out.is_null() {
        for (i, v) in c.iter().enumerate().take(n) {
            // SAFETY: the caller's array of n.
            unsafe { out.add(i).write(*v) };
        }
    }
    c.len()
}

/// Prints the counters on stderr (one line).
pub fn print_stats() {
    let [fast, trap, known, patched, refused] = counters();
    let total = fast + trap;
    let pct = |a: u64, b: u64| (a * 1000).checked_div(b).unwrap_or(0);
    let share = pct(fast, total);
    let steady = pct(fast, fast + known);
    let mut l = Line::new();
    l.s(b"lkl-hijack: rewrite: ")
        .u(fast)
        .s(b" calls through rewritten sites, ")
        .u(trap)
        .s(b" through the trap (")
        .u(known)
        .s(b" at known sites); share ")
        .u(share / 10)
        .s(b".")
        .u(share % 10)
        .s(b"%, steady ")
        .u(steady / 10)
        .s(b".")
        .u(steady % 10)
        .s(b"%; ")
        .u(patched)
        .s(b" sites rewritten, ")
        .u(refused)
        .s(b" refused");
    l.flush();
}

/// Before a routed call (trap.rs's `lkl_tier_route`): a call through the
/// trap counted (`lkl_tier_fast` counts the others in the thread's
/// block); the counters printed at `exit_group` when asked for.
#[inline]
pub fn before(fast: bool, nr: u64) {
    if !fast {
        TRAPPED.fetch_add(1, Ordering::Relaxed);
    }
    if nr == 231 && STATS.load(Ordering::Relaxed) {
        print_stats();
    }
}

// ---------------------------------------------------------------------
// The sites seen: address (after the `syscall`) -> state. Written under
// LOCK, read without it.

const SITES: usize = 4096;
const NEW: u8 = 0;
const DONE: u8 = 1;
const KEPT: u8 = 2;
static KEYS: [AtomicUsize; SITES] = [const { AtomicUsize::new(0) }; SITES];
static STATE: [AtomicU8; SITES] = [const { AtomicU8::new(NEW) }; SITES];
static LOCK: AtomicBool = AtomicBool::new(false);

fn slot_of(rip: usize) -> usize {
    (rip.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) % SITES
}

/// The state recorded for `rip` (NEW: none).
fn lookup(rip: usize) -> u8 {
    let mut i = slot_of(rip);
    for _ in 0..SITES {
        let k = KEYS[i].load(Ordering::Acquire);
        if k == 0 {
            return NEW;
        }
        if k == rip {
            return STATE[i].load(Ordering::Acquire);
        }
        i = (i + 1) % SITES;
    }
    KEPT
}

/// Records `rip`'s state (under LOCK). False: the table is full.
fn record(rip: usize, st: u8) -> bool {
    let mut i = slot_of(rip);
    for _ in 0..SITES {
        let k = KEYS[i].load(Ordering::Acquire);
        if k == 0 || k == rip {
            STATE[i].store(st, Ordering::Release);
            KEYS[i].store(rip, Ordering::Release);
            return true;
        }
        i = (i + 1) % SITES;
    }
    false
}

/// After a call that came through the trap (trap.rs): a site seen for the
/// first time is analysed and, if proven safe, rewritten.
pub fn after_trap(rip: usize, nr: u64) {
    if !on() {
        return;
    }
    if lookup(rip) != NEW {
        TRAPPED_KNOWN.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if LOCK
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    if lookup(rip) == NEW {
        let r = consider(rip, nr);
        let full = !record(rip, if r.is_ok() { DONE } else { KEPT });
        let (count, verdict, reason) = match r {
            Ok(how) => (&PATCHED, &b") rewritten: "[..], how),
            Err(why) => (&REFUSED, &b") stays on the trap: "[..], why),
        };
        count.fetch_add(1, Ordering::Relaxed);
        if STATS.load(Ordering::Relaxed) {
            let mut l = Line::new();
            l.s(b"lkl-hijack: rewrite: site ")
                .x(rip as u64 - 2)
                .s(b" (call ")
                .u(nr)
                .s(verdict)
                .s(reason.as_bytes());
            l.flush();
        }
        if full && STATS.load(Ordering::Relaxed) {
            say(b"rewrite: site table full");
        }
    }
    LOCK.store(false, Ordering::Release);
}

// ---------------------------------------------------------------------
// /proc/self/maps and the ELF files, read with raw calls into memory of
// our own (mmap).

/// A scratch buffer for /proc/self/maps (mapped once, kept).
static SCRATCH: AtomicUsize = AtomicUsize::new(0);
const SCRATCH_LEN: usize = 4 << 20;

/// One line of /proc/self/maps.
#[derive(Clone, Copy)]
struct Vma {
    start: usize,
    end: usize,
    prot: i64,
    private: bool,
    writable: bool,
    offset: usize,
    inode: u64,
    /// The path (in the scratch buffer): offset, length.
    path: (usize, usize),
}

fn hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0usize;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | usize::from(d);
    }
    Some(v)
}

fn dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// The scratch buffer, mapped on first use.
fn scratch() -> Option<&'static mut [u8]> {
    let mut p = SCRATCH.load(Ordering::Acquire);
    if p == 0 {
        p = gate::map_anon(SCRATCH_LEN)?;
        SCRATCH.store(p, Ordering::Release);
    }
    // SAFETY: our own mapping, used under LOCK only.
    Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, SCRATCH_LEN) })
}

/// Reads /proc/self/maps into the scratch buffer; its length.
fn read_maps(buf: &mut [u8]) -> Option<usize> {
    let fd = raw(
        libc::SYS_openat,
        [
            libc::AT_FDCWD.into(),
            c"/proc/self/maps".as_ptr() as i64,
            i64::from(libc::O_RDONLY | libc::O_CLOEXEC),
            0,
            0,
            0,
        ],
    );
    if fd < 0 {
        return None;
    }
    let mut n = 0usize;
    loop {
        if n >= buf.len() {
            raw(libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
            return None;
        }
        let r = raw(
            libc::SYS_read,
            [
                fd,
                buf[n..].as_mut_ptr() as i64,
                (buf.len() - n) as i64,
                0,
                0,
                0,
            ],
        );
        if r == -i64::from(libc::EINTR) {
            continue;
        }
        if r < 0 {
            raw(libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
            return None;
        }
        if r == 0 {
            break;
        }
        n += r as usize;
    }
    raw(libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
    Some(n)
}

/// One line of the maps text (starting at `here` in it).
fn parse_line(line: &[u8], here: usize) -> Option<Vma> {
    let mut f = line.splitn(6, |&c| c == b' ');
    let range = f.next()?;
    let dash = range.iter().position(|&c| c == b'-')?;
    let (lo, hi) = (hex(&range[..dash])?, hex(&range[dash + 1..])?);
    let perms = f.next()?;
    let offset = hex(f.next()?)?;
    let _dev = f.next()?;
    let inode = dec(f.next()?)?;
    let rest = f.next().unwrap_or(b"");
    let lead = rest.iter().take_while(|&&c| c == b' ').count();
    if perms.len() < 4 {
        return None;
    }
    let mut prot = 0;
    if perms[0] == b'r' {
        prot |= i64::from(libc::PROT_READ);
    }
    if perms[1] == b'w' {
        prot |= i64::from(libc::PROT_WRITE);
    }
    if perms[2] == b'x' {
        prot |= i64::from(libc::PROT_EXEC);
    }
    Some(Vma {
        start: lo,
        end: hi,
        prot,
        private: perms[3] == b'p',
        writable: perms[1] == b'w',
        offset,
        inode,
        path: (here + (line.len() - rest.len()) + lead, rest.len() - lead),
    })
}

/// The lines of the maps text, each with its offset.
fn lines(text: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut off = 0usize;
    text.split(|&c| c == b'\n').map(move |l| {
        let here = off;
        off += l.len() + 1;
        (l, here)
    })
}

/// The mapping holding `addr`, from the maps text, joined with its
/// neighbours that map the same file contiguously with the same
/// protection (a page we patched splits the kernel's mapping).
fn vma_of(text: &[u8], addr: usize) -> Option<Vma> {
    let mut v = lines(text)
        .filter_map(|(l, h)| parse_line(l, h))
        .find(|v| (v.start..v.end).contains(&addr))?;
    if v.inode == 0 {
        return Some(v);
    }
    loop {
        let mut changed = false;
        for (l, h) in lines(text) {
            let Some(n) = parse_line(l, h) else { continue };
            if n.inode != v.inode || n.prot != v.prot || n.private != v.private {
                continue;
            }
            if n.end == v.start && n.offset + (n.end - n.start) == v.offset {
                v.start = n.start;
                v.offset = n.offset;
                changed = true;
            } else if n.start == v.end && n.offset == v.offset + (v.end - v.start) {
                v.end = n.end;
                changed = true;
            }
        }
        if !changed {
            return Some(v);
        }
    }
}

/// ELF files mapped read-only, kept: (inode, size, base).
const FILES: usize = 32;
static FILE_CACHE: [[AtomicUsize; 3]; FILES] =
    [const { [const { AtomicUsize::new(0) }; 3] }; FILES];

/// The whole file at `path` (NUL-terminated) mapped read-only, if its
/// inode is `inode`.
fn map_file(path: &[u8], inode: u64) -> Option<&'static [u8]> {
    for e in FILE_CACHE.iter() {
        if e[0].load(Ordering::Relaxed) as u64 == inode && e[2].load(Ordering::Relaxed) != 0 {
            let (len, base) = (e[1].load(Ordering::Relaxed), e[2].load(Ordering::Relaxed));
            // SAFETY: a read-only mapping of ours, never unmapped.
            return Some(unsafe { std::slice::from_raw_parts(base as *const u8, len) });
        }
    }
    let fd = raw(
        libc::SYS_openat,
        [
            libc::AT_FDCWD.into(),
            path.as_ptr() as i64,
            i64::from(libc::O_RDONLY | libc::O_CLOEXEC),
            0,
            0,
            0,
        ],
    );
    if fd < 0 {
        return None;
    }
    // SAFETY: all-zero is a valid stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = raw(
        libc::SYS_fstat,
        [fd, &mut st as *mut libc::stat as i64, 0, 0, 0, 0],
    );
    if r != 0 || st.st_ino != inode || st.st_size < 64 {
        raw(libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
        return None;
    }
    let len = st.st_size as usize;
    let m = raw(
        libc::SYS_mmap,
        [
            0,
            len as i64,
            i64::from(libc::PROT_READ),
            i64::from(libc::MAP_PRIVATE),
            fd,
            0,
        ],
    );
    raw(libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
    if (-4095..0).contains(&m) {
        return None;
    }
    if let Some(e) = FILE_CACHE
        .iter()
        .find(|e| e[2].load(Ordering::Relaxed) == 0)
    {
        e[0].store(inode as usize, Ordering::Relaxed);
        e[1].store(len, Ordering::Relaxed);
        e[2].store(m as usize, Ordering::Relaxed);
    }
    // SAFETY: the mapping just made (kept if the cache had room; a few
    // leaked read-only mappings otherwise).
    Some(unsafe { std::slice::from_raw_parts(m as usize as *const u8, len) })
}

fn rd<const N: usize>(f: &[u8], at: usize) -> Option<[u8; N]> {
    f.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn u16_at(f: &[u8], at: usize) -> Option<usize> {
    rd::<2>(f, at).map(|b| usize::from(u16::from_le_bytes(b)))
}
fn u32_at(f: &[u8], at: usize) -> Option<u32> {
    rd::<4>(f, at).map(u32::from_le_bytes)
}
fn u64_at(f: &[u8], at: usize) -> Option<u64> {
    rd::<8>(f, at).map(u64::from_le_bytes)
}

/// The executable `PT_LOAD` holding file offset `off`: (p_offset,
/// p_vaddr, p_filesz).
fn load_of(f: &[u8], off: usize) -> Option<(usize, u64, usize)> {
    if f.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let phoff = u64_at(f, 0x20)? as usize;
    let phsz = u16_at(f, 0x36)?;
    let phnum = u16_at(f, 0x38)?;
    for i in 0..phnum {
        let p = phoff.checked_add(i.checked_mul(phsz)?)?;
        if u32_at(f, p)? != 1 || u32_at(f, p + 4)? & 1 == 0 {
            continue;
        }
        let (o, v, sz) = (
            u64_at(f, p + 8)? as usize,
            u64_at(f, p + 16)?,
            u64_at(f, p + 32)? as usize,
        );
        if (o..o.checked_add(sz)?).contains(&off) {
            return Some((o, v, sz));
        }
    }
    None
}

/// The function symbol covering `v` (value, size), and the lowest
/// symbol start above its end (the padding's end), from `.symtab` if it
/// has one covering `v`, else `.dynsym`.
fn function_of(f: &[u8], v: u64) -> Option<(u64, u64, u64)> {
    let shoff = u64_at(f, 0x28)? as usize;
    let shsz = u16_at(f, 0x3a)?;
    let shnum = u16_at(f, 0x3c)?;
    for want in [2u32, 11] {
        for i in 0..shnum {
            let s = shoff.checked_add(i.checked_mul(shsz)?)?;
            if u32_at(f, s + 4)? != want {
                continue;
            }
            let (off, size, ent) = (
                u64_at(f, s + 24)? as usize,
                u64_at(f, s + 32)? as usize,
                u64_at(f, s + 56)? as usize,
            );
            if ent < 24 {
                continue;
            }
            let syms = f.get(off..off.checked_add(size)?)?;
            let mut found = None;
            for e in syms.chunks_exact(ent) {
                let (info, shndx) = (e[4], u16::from_le_bytes([e[6], e[7]]));
                let value = u64::from_le_bytes(e[8..16].try_into().ok()?);
                let sz = u64::from_le_bytes(e[16..24].try_into().ok()?);
                if info & 0xf == 2 && shndx != 0 && sz > 0 && value <= v && v < value + sz {
                    found = Some((value, sz));
                    break;
                }
            }
            let Some((value, sz)) = found else { continue };
            let end = value + sz;
            let mut next = u64::MAX;
            for e in syms.chunks_exact(ent) {
                let shndx = u16::from_le_bytes([e[6], e[7]]);
                let value = u64::from_le_bytes(e[8..16].try_into().ok()?);
                if shndx != 0 && value >= end && value < next {
                    next = value;
                }
            }
            return Some((value, sz, next));
        }
    }
    None
}

// ---------------------------------------------------------------------
// The analysis.

/// How a site is entered.
enum Entry {
    /// `jmp rel32` over the run's first instruction (>= 5 bytes).
    Direct,
    /// `jmp rel8` to padding at this address, there `jmp rel32`.
    Pad(usize),
}

/// An instruction the stub may run at another address: it moves values
/// between registers, immediates and memory addressed by registers; no
/// branch, nothing rip-relative, `rsp` untouched.
fn relocatable(i: &Instruction) -> bool {
    if i.flow_control() != FlowControl::Next || i.is_ip_rel_memory_operand() {
        return false;
    }
    let ok = matches!(
        i.code(),
        Code::Mov_r32_imm32
            | Code::Mov_r64_imm64
            | Code::Mov_rm32_imm32
            | Code::Mov_rm64_imm32
            | Code::Mov_rm64_r64
            | Code::Mov_r64_rm64
            | Code::Mov_rm32_r32
            | Code::Mov_r32_rm32
            | Code::Xor_rm32_r32
            | Code::Xor_r32_rm32
            | Code::Lea_r64_m
            | Code::Lea_r32_m
    );
    if !ok || i.op_count() == 0 {
        return false;
    }
    // The destination is a register other than rsp/esp (loads through rsp
    // are fine: the stub runs them on the program's stack).
    i.op_kind(0) == OpKind::Register && !matches!(i.op_register(0), Register::RSP | Register::ESP)
}

/// The number a run sets in eax/rax with an immediate, if it does.
fn fixed_nr(run: &[Instruction]) -> Option<u64> {
    let mut nr = None;
    for i in run {
        let reg = i.op_register(0);
        if matches!(reg, Register::EAX | Register::RAX) {
            nr = match (i.code(), i.op_kind(1)) {
                (Code::Xor_rm32_r32 | Code::Xor_r32_rm32, _) if i.op_register(1) == reg => Some(0),
                (_, OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64) => {
                    Some(i.immediate(1))
                }
                _ => None,
            };
        }
    }
    nr
}

const MAX_RUN: usize = 8;

/// Analyses the site whose `syscall` ends at `rip` and rewrites it.
fn consider(rip: usize, _nr: u64) -> Result<&'static str, &'static str> {
    let sys = rip.checked_sub(2).ok_or("bad address")?;
    // SAFETY: the program just executed the instruction there.
    if unsafe { std::ptr::read_volatile(sys as *const [u8; 2]) } != [0x0f, 0x05] {
        return Err("not a syscall instruction");
    }
    let buf = scratch().ok_or("no memory")?;
    let n = read_maps(buf).ok_or("cannot read /proc/self/maps")?;
    let text = &buf[..n];
    let vma = vma_of(text, sys).ok_or("no mapping")?;
    let rx = i64::from(libc::PROT_READ | libc::PROT_EXEC);
    if vma.inode == 0 || !vma.private || vma.writable || vma.prot & rx != rx {
        return Err("not in a private read-only file mapping (run-time code?)");
    }
    // This library's own sites that trap are the program's calls too (the
    // `syscall` hook issues the program's number as is, to be routed); the
    // exempt range never traps, and is never touched.
    let (ex, exlen) = super::trap::exempt_range();
    if (ex..ex + exlen).contains(&sys) {
        return Err("in the exempt range");
    }
    let (ps, pl) = vma.path;
    let path = text.get(ps..ps + pl).ok_or("bad maps line")?;
    if path.first() != Some(&b'/') || path.ends_with(b" (deleted)") || path.len() >= 4095 {
        return Err("no file path");
    }
    let mut cpath = [0u8; 4096];
    cpath[..path.len()].copy_from_slice(path);
    let file = map_file(&cpath[..=path.len()], vma.inode).ok_or("cannot map the file")?;
    // The site's place in the file and in the ELF's addresses.
    let to_file = |a: usize| a - vma.start + vma.offset;
    let sys_off = to_file(sys);
    let (p_off, p_vaddr, p_filesz) =
        load_of(file, sys_off).ok_or("not in an executable segment")?;
    let to_vaddr = |off: usize| (off - p_off) as u64 + p_vaddr;
    let to_mem = |v: u64| -> Option<usize> {
        let off = usize::try_from(v.checked_sub(p_vaddr)?)
            .ok()?
            .checked_add(p_off)?;
        if off < p_off || off >= p_off + p_filesz {
            return None;
        }
        let a = off.checked_sub(vma.offset)?.checked_add(vma.start)?;
        (vma.start..vma.end).contains(&a).then_some(a)
    };
    let sys_v = to_vaddr(sys_off);
    let (fn_v, fn_sz, next_v) = function_of(file, sys_v).ok_or("no function symbol covers it")?;
    let fn_mem = to_mem(fn_v).ok_or("function outside the mapping")?;
    let fn_end_mem = to_mem(fn_v + fn_sz - 1).ok_or("function outside the mapping")? + 1;
    let fn_bytes = file
        .get(to_file(fn_mem)..to_file(fn_end_mem))
        .ok_or("function outside the file")?;
    // Decode the function from its start: the instructions up to the
    // syscall (the last MAX_RUN of them kept).
    let mut dec = Decoder::with_ip(64, fn_bytes, fn_v, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut last: [Instruction; MAX_RUN] = [Instruction::default(); MAX_RUN];
    let mut count = 0usize;
    let mut at_sys = false;
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.is_invalid() {
            return Err("undecodable instruction in the function");
        }
        if ins.ip() == sys_v {
            at_sys = ins.code() == Code::Syscall;
            break;
        }
        if ins.ip() > sys_v {
            break;
        }
        last[count % MAX_RUN] = ins;
        count += 1;
    }
    if !at_sys {
        return Err("the syscall is not on an instruction boundary of its function");
    }
    // The run: relocatable instructions right before the syscall.
    let mut run: [Instruction; MAX_RUN] = [Instruction::default(); MAX_RUN];
    let mut k = 0usize;
    while k < count.min(MAX_RUN) {
        let i = last[(count - 1 - k) % MAX_RUN];
        if !relocatable(&i) {
            break;
        }
        k += 1;
    }
    for j in 0..k {
        run[j] = last[(count - k + j) % MAX_RUN];
    }
    let run = &run[..k];
    if run.is_empty() {
        return Err("no relocatable instruction before the syscall");
    }
    if let Some(nr) = fixed_nr(run) {
        if nr == 15 || nr == 60 {
            return Err("rt_sigreturn/exit stay on the trap");
        }
    }
    // Entry: the earliest instruction of 5 bytes or more takes the jump;
    // else the first (>= 2 bytes) a short jump to the padding.
    let (start, entry) = if let Some(p) = run.iter().position(|i| i.len() >= 5) {
        (p, Entry::Direct)
    } else if run[0].len() >= 2 {
        (0, Entry::Pad(0))
    } else {
        return Err("the run's first instruction is 1 byte");
    };
    let run = &run[start..];
    let w_v = run[0].ip();
    let w = to_mem(w_v).ok_or("outside the mapping")?;
    let plen = match entry {
        Entry::Direct => 5,
        Entry::Pad(_) => 2,
    };
    // No branch of the function lands inside the bytes overwritten, and
    // (with padding) none lands in the gap, the last instruction does not
    // fall through into it, and the gap is nops or int3.
    let fn_end_v = fn_v + fn_sz;
    let mut dec = Decoder::with_ip(64, fn_bytes, fn_v, DecoderOptions::NONE);
    let mut last_flow = FlowControl::Next;
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.is_invalid() {
            return Err("undecodable instruction in the function");
        }
        last_flow = ins.flow_control();
        if matches!(
            last_flow,
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch | FlowControl::Call
        ) {
            let t = ins.near_branch_target();
            if t > w_v && t < w_v + plen {
                return Err("a branch lands inside the bytes to overwrite");
            }
            if t >= fn_end_v && t < next_v {
                return Err("a branch lands in the padding after the function");
            }
        }
    }
    let entry = match entry {
        Entry::Direct => Entry::Direct,
        Entry::Pad(_) => {
            if !matches!(
                last_flow,
                FlowControl::Return
                    | FlowControl::UnconditionalBranch
                    | FlowControl::IndirectBranch
            ) {
                return Err("the function falls through into its padding");
            }
            let gap_end_v = next_v.min(fn_end_v + 256);
            let gap_mem = to_mem(fn_end_v).ok_or("no padding in the mapping")?;
            let gap_len = usize::try_from(gap_end_v - fn_end_v).map_err(|_| "bad padding")?;
            let gap_len = gap_len.min(vma.end - gap_mem);
            let gap = file
                .get(to_file(gap_mem)..to_file(gap_mem) + gap_len)
                .ok_or("padding outside the file")?;
            let mut dec = Decoder::with_ip(64, gap, fn_end_v, DecoderOptions::NONE);
            let mut good = 0usize;
            while dec.can_decode() {
                dec.decode_out(&mut ins);
                if ins.is_invalid()
                    || !matches!(
                        ins.code(),
                        Code::Int3
                            | Code::Nopw
                            | Code::Nopd
                            | Code::Nopq
                            | Code::Nop_rm16
                            | Code::Nop_rm32
                            | Code::Nop_rm64
                    )
                {
                    break;
                }
                good += ins.len();
            }
            // 5 free bytes within a short jump's reach.
            let from = w + 2;
            let mut pad = None;
            let mut a = gap_mem;
            while a + 5 <= gap_mem + good && a <= from + 127 {
                if !pad_used(a) {
                    pad = Some(a);
                    break;
                }
                a += 5;
            }
            Entry::Pad(pad.ok_or("no free padding within a short jump")?)
        }
    };
    // The bytes in memory are the file's.
    let sys_end = sys + 2;
    let same = |a: usize, len: usize| -> bool {
        let f = file.get(to_file(a)..to_file(a) + len);
        // SAFETY: inside the program's executable mapping.
        let m = unsafe { std::slice::from_raw_parts(a as *const u8, len) };
        f == Some(m)
    };
    if !same(w, sys_end - w) {
        return Err("the code differs from its file (patched already?)");
    }
    if let Entry::Pad(p) = entry {
        if !same(p, 5) {
            return Err("the padding differs from its file");
        }
    }
    // The cache line rule for the atomic store.
    let line = w & !63;
    if w + plen as usize > line + 64 {
        return Err("the jump would cross a cache line");
    }
    // The stub.
    // SAFETY: the run's bytes, inside the mapping (checked above).
    let run_bytes = unsafe { std::slice::from_raw_parts(w as *const u8, sys - w) };
    let stub = make_stub(sys, run_bytes).ok_or("no stub memory within 2 GiB")?;
    patch(w, &entry, stub, vma.prot)?;
    Ok(match entry {
        Entry::Direct => "a jump over the instruction before it",
        Entry::Pad(_) => "a short jump to the padding after its function",
    })
}

/// Pads in use: a small list (under LOCK).
static PADS: [AtomicUsize; 1024] = [const { AtomicUsize::new(0) }; 1024];

fn pad_used(a: usize) -> bool {
    PADS.iter().any(|p| {
        let p = p.load(Ordering::Relaxed);
        p != 0 && a < p + 5 && p < a + 5
    })
}

fn pad_take(a: usize) -> bool {
    if let Some(p) = PADS.iter().find(|p| p.load(Ordering::Relaxed) == 0) {
        p.store(a, Ordering::Relaxed);
        return true;
    }
    false
}

// ---------------------------------------------------------------------
// Stubs.

const STUB: usize = 128;
const ZONE: usize = 256 << 10;
const ZONES: usize = 32;
/// Stub zones: (base, bytes used).
static ZONE_TABLE: [[AtomicUsize; 2]; ZONES] =
    [const { [const { AtomicUsize::new(0) }; 2] }; ZONES];
const PAGE: usize = 4096;

extern "C" {
    /// trap.rs: the common entry of the stubs.
    fn lkl_tier_fast();
}

fn near(a: usize, b: usize) -> bool {
    a.abs_diff(b) < (1usize << 31) - 2 * ZONE
}

/// A zone of stub memory within reach of `site` (a new one mapped with
/// hints around it), and a free stub in it.
fn stub_slot(site: usize) -> Option<usize> {
    for z in ZONE_TABLE.iter() {
        let base = z[0].load(Ordering::Relaxed);
        let used = z[1].load(Ordering::Relaxed);
        if base != 0 && near(base, site) && used + STUB <= ZONE {
            z[1].store(used + STUB, Ordering::Relaxed);
            return Some(base + used);
        }
    }
    let free = ZONE_TABLE
        .iter()
        .find(|z| z[0].load(Ordering::Relaxed) == 0)?;
    let around = site & !(ZONE - 1);
    for k in 1..512usize {
        for dir in [1i64, -1] {
            let Some(hint) = (if dir > 0 {
                around.checked_add(k * (4 << 20))
            } else {
                around.checked_sub(k * (4 << 20))
            }) else {
                continue;
            };
            // Well above page 0 and the low megabytes.
            if !((16 << 20)..=(1usize << 47) - ZONE).contains(&hint) {
                continue;
            }
            let m = raw(
                libc::SYS_mmap,
                [
                    hint as i64,
                    ZONE as i64,
                    i64::from(libc::PROT_READ | libc::PROT_EXEC),
                    i64::from(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) | MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                ],
            );
            if (-4095..0).contains(&m) {
                continue;
            }
            let m = m as usize;
            if !near(m, site) {
                raw(libc::SYS_munmap, [m as i64, ZONE as i64, 0, 0, 0, 0]);
                continue;
            }
            free[0].store(m, Ordering::Relaxed);
            free[1].store(STUB, Ordering::Relaxed);
            return Some(m);
        }
    }
    None
}

/// Writes `bytes` at `at` in code memory: its pages made writable (and
/// executable, so that code running there goes on), then `prot` again.
fn write_code(at: usize, bytes: &[u8], prot: i64) -> bool {
    let lo = at & !(PAGE - 1);
    let hi = (at + bytes.len() + PAGE - 1) & !(PAGE - 1);
    let rwx = i64::from(libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC);
    if raw(
        libc::SYS_mprotect,
        [lo as i64, (hi - lo) as i64, rwx, 0, 0, 0],
    ) != 0
    {
        return false;
    }
    // SAFETY: writable now; nothing executes these bytes yet (a new stub,
    // unused padding).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len()) };
    raw(
        libc::SYS_mprotect,
        [lo as i64, (hi - lo) as i64, prot, 0, 0, 0],
    ) == 0
}

/// A stub for the site whose `syscall` is at `sys`, running `run` first
/// (see the module's comment); its address.
fn make_stub(sys: usize, run: &[u8]) -> Option<usize> {
    let s = stub_slot(sys)?;
    let mut c = [0xccu8; STUB];
    let mut n = 0usize;
    let put = |c: &mut [u8; STUB], n: &mut usize, b: &[u8]| {
        c[*n..*n + b.len()].copy_from_slice(b);
        *n += b.len();
    };
    let rel32 = |from_end: usize, to: usize| -> Option<[u8; 4]> {
        let d = to as i64 - from_end as i64;
        i32::try_from(d).ok().map(i32::to_le_bytes)
    };
    if run.len() > 64 {
        return None;
    }
    put(&mut c, &mut n, run);
    put(&mut c, &mut n, &[0xf3, 0x49, 0x0f, 0xae, 0xcb]); // rdgsbase %r11
    put(&mut c, &mut n, &[0x4d, 0x85, 0xdb]); // test %r11,%r11
    let jz = n;
    put(&mut c, &mut n, &[0x74, 0]); // jz raw
    put(&mut c, &mut n, &[0x41, 0x80, 0x3b, gate::BLOCK]); // cmpb $BLOCK,(%r11)
    let jne1 = n;
    put(&mut c, &mut n, &[0x75, 0]); // jne raw
    put(&mut c, &mut n, &[0xf3, 0x48, 0x0f, 0xae, 0xc1]); // rdfsbase %rcx
    put(&mut c, &mut n, &[0x49, 0x3b, 0x8b]); // cmp B_OWNER(%r11),%rcx
    put(&mut c, &mut n, &(B_OWNER as u32).to_le_bytes());
    let jne2 = n;
    put(&mut c, &mut n, &[0x75, 0]); // jne raw
    put(&mut c, &mut n, &[0x48, 0x8d, 0x0d]); // lea ret(%rip),%rcx
    let r = rel32(s + n + 4, sys + 2)?;
    put(&mut c, &mut n, &r);
    put(&mut c, &mut n, &[0xff, 0x25]); // jmp *slot(%rip)
    let slot_ref = n;
    put(&mut c, &mut n, &[0; 4]);
    let raw_at = n;
    put(&mut c, &mut n, &[0xe9]); // raw: jmp the site's own syscall
    let r = rel32(s + n + 4, sys)?;
    put(&mut c, &mut n, &r);
    let slot = (n + 7) & !7;
    if slot + 8 > STUB {
        return None;
    }
    c[slot..slot + 8].copy_from_slice(&(lkl_tier_fast as *const () as u64).to_le_bytes());
    let slot_rel = (slot - (slot_ref + 4)) as u32;
    c[slot_ref..slot_ref + 4].copy_from_slice(&slot_rel.to_le_bytes());
    for j in [jz, jne1, jne2] {
        c[j + 1] = u8::try_from(raw_at - (j + 2)).ok()?;
    }
    let rx = i64::from(libc::PROT_READ | libc::PROT_EXEC);
    write_code(s, &c, rx).then_some(s)
}

/// Points the site's entry at `stub` (see the module's comment on why
/// this is safe with other threads running it).
fn patch(w: usize, entry: &Entry, stub: usize, prot: i64) -> Result<(), &'static str> {
    let (bytes, len): ([u8; 5], usize) = match *entry {
        Entry::Direct => {
            let d = i32::try_from(stub as i64 - (w as i64 + 5)).map_err(|_| "stub out of reach")?;
            let r = d.to_le_bytes();
            ([0xe9, r[0], r[1], r[2], r[3]], 5)
        }
        Entry::Pad(p) => {
            let d = i32::try_from(stub as i64 - (p as i64 + 5)).map_err(|_| "stub out of reach")?;
            let r = d.to_le_bytes();
            if !write_code(p, &[0xe9, r[0], r[1], r[2], r[3]], prot) || !pad_take(p) {
                return Err("cannot write the padding");
            }
            let short =
                i8::try_from(p as i64 - (w as i64 + 2)).map_err(|_| "padding out of reach")?;
            ([0xeb, short as u8, 0, 0, 0], 2)
        }
    };
    // The 8 bytes around [w, w+len) inside w's cache line.
    let line = w & !63;
    let a = w.min(line + 64 - 8).max(line);
    let lo = a & !(PAGE - 1);
    let rwx = i64::from(libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC);
    if raw(libc::SYS_mprotect, [lo as i64, PAGE as i64, rwx, 0, 0, 0]) != 0 {
        return Err("mprotect refused");
    }
    // SAFETY: 8 bytes of the (now writable) code page, inside one line.
    let old = unsafe { (a as *const u64).read_unaligned() };
    let mut new = old.to_le_bytes();
    new[w - a..w - a + len].copy_from_slice(&bytes[..len]);
    let new = u64::from_le_bytes(new);
    let prev: u64;
    // SAFETY: a locked compare-and-exchange of those 8 bytes (unaligned
    // but inside one cache line: atomic, no split lock).
    unsafe {
        std::arch::asm!(
            "lock cmpxchg qword ptr [{a}], {new}",
            a = in(reg) a,
            new = in(reg) new,
            inout("rax") old => prev,
            options(nostack),
        );
    }
    raw(libc::SYS_mprotect, [lo as i64, PAGE as i64, prot, 0, 0, 0]);
    if prev != old {
        return Err("the code changed while patching");
    }
    if SYNC_CORE.load(Ordering::Relaxed) {
        raw(libc::SYS_membarrier, [MEMBARRIER_SYNC_CORE, 0, 0, 0, 0, 0]);
    }
    Ok(())
}
