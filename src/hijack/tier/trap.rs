//! The trap: the SIGSYS handler and the code around it, in assembly where
//! registers must be exact.
//!
//! A system call outside the exempt range, made while the thread's
//! selector says BLOCK, does not run: the host kernel rolls it back and
//! raises SIGSYS (`si_code` `SYS_USER_DISPATCH`), with the call's number in
//! `rax`, its arguments in their registers and `rip` just after the
//! `syscall` instruction. The handler (`on_sigsys`) only edits the saved
//! context: it copies the registers into a `Frame` on the thread's own
//! stack (its block's) and points `rip` at the trampoline, `rsp` at the
//! frame. When it returns (through our restorer, in the exempt range), the
//! trampoline runs as ordinary code: selector to ALLOW, the program's
//! vector state saved (by hand, or `xsave`: `VMODE`), the router called
//! (`route::dispatch`), the state restored, the registers reloaded,
//! selector to BLOCK, and a jump back to the instruction after the
//! program's `syscall`, with the result in `rax`. The routed call thus
//! never runs inside the handler:
//! it may block, take locks, be interrupted by signals.
//!
//! Three calls never reach the trampoline:
//! - `rt_sigreturn` (a handler of the program returning through its
//!   restorer): re-issued as is from the exempt range, so it restores the
//!   program's frame where its `rsp` points;
//! - `exit` (one thread ends): its block goes back to the free list, every
//!   signal is blocked (nothing may run on the thread any more) and the
//!   call is re-issued from the exempt range;
//! - a SIGSYS that is not a dispatch (seccomp, `kill`): handed to the
//!   program's own SIGSYS handler, if it set one (gate.rs keeps it).
//!
//! `clone`, `clone3`, `fork` and `vfork` are issued by `lkl_tier_clone`,
//! whose child half arms the new task before it runs a single instruction
//! of the program (Syscall User Dispatch is off in every new task).

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use super::gate::Block;

/// The registers of one trapped call, and what a clone's child needs; the
/// program's saved vector state follows it (64-byte aligned: by hand or
/// an `xsave` image, see `VMODE`).
#[repr(C, align(64))]
pub struct Frame {
    pub rax: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub r10: u64,
    pub r8: u64,
    pub r9: u64,
    pub rbx: u64,
    pub rbp: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rsp: u64,
    pub rip: u64,
    /// The block of the thread that trapped.
    pub block: *mut Block,
    /// A clone's child: its new block (`%gs`), or null to keep the
    /// parent's (a child with memory of its own).
    pub child_block: *mut Block,
    /// A clone's child: the selector it arms with.
    pub child_sel: *mut u8,
    /// A clone's child: 1 if it keeps the stack the host kernel gave it
    /// (a new stack was asked for), 0 to take the program's `rsp`.
    pub child_keep_sp: u64,
    /// Set by a clone's child once it no longer reads this frame.
    pub child_done: AtomicU32,
    /// The program's `%fs` base (when the block swaps it): restored on
    /// the way back; `arch_prctl(ARCH_SET_FS)` sets it here.
    pub fs: u64,
    /// A clone's child: 1 to set `%fs` to `fs` (it inherited our swapped
    /// one), 0 to keep what the host gave it (CLONE_SETTLS, or no swap).
    pub child_fs: u64,
    /// 1 when the call came through a rewritten site (`lkl_tier_fast`),
    /// 0 through the trap.
    pub via: u64,
    /// How the trampoline kept the program's vector state: the components
    /// that were in use (XINUSE), saved by hand; or all ones: an XSAVE
    /// image (see `VMODE`). Read back by the trampoline and by a clone's
    /// child, which restores the same state.
    pub vstate: u64,
}

const F_RAX: usize = std::mem::offset_of!(Frame, rax);
const F_RDI: usize = std::mem::offset_of!(Frame, rdi);
const F_RSI: usize = std::mem::offset_of!(Frame, rsi);
const F_RDX: usize = std::mem::offset_of!(Frame, rdx);
const F_R10: usize = std::mem::offset_of!(Frame, r10);
const F_R8: usize = std::mem::offset_of!(Frame, r8);
const F_R9: usize = std::mem::offset_of!(Frame, r9);
const F_RBX: usize = std::mem::offset_of!(Frame, rbx);
const F_RBP: usize = std::mem::offset_of!(Frame, rbp);
const F_R12: usize = std::mem::offset_of!(Frame, r12);
const F_R13: usize = std::mem::offset_of!(Frame, r13);
const F_R14: usize = std::mem::offset_of!(Frame, r14);
const F_R15: usize = std::mem::offset_of!(Frame, r15);
const F_RSP: usize = std::mem::offset_of!(Frame, rsp);
const F_RIP: usize = std::mem::offset_of!(Frame, rip);
const F_BLOCK: usize = std::mem::offset_of!(Frame, block);
const F_CHILD_BLOCK: usize = std::mem::offset_of!(Frame, child_block);
const F_CHILD_SEL: usize = std::mem::offset_of!(Frame, child_sel);
const F_CHILD_KEEP_SP: usize = std::mem::offset_of!(Frame, child_keep_sp);
const F_CHILD_DONE: usize = std::mem::offset_of!(Frame, child_done);
/// Where the `xsave` image starts.
const F_XSAVE: usize = std::mem::size_of::<Frame>();
const _: () = assert!(F_XSAVE.is_multiple_of(64));
const F_FS: usize = std::mem::offset_of!(Frame, fs);
const F_CHILD_FS: usize = std::mem::offset_of!(Frame, child_fs);
const F_VIA: usize = std::mem::offset_of!(Frame, via);
const F_VST: usize = std::mem::offset_of!(Frame, vstate);
const B_LO: usize = std::mem::offset_of!(Block, stack_lo);
const B_TOP: usize = std::mem::offset_of!(Block, stack_top);
const B_OWNER: usize = super::rewrite::B_OWNER;
const B_RET: usize = std::mem::offset_of!(Block, fast_ret);
const B_FAST: usize = std::mem::offset_of!(Block, fast_calls);
const B_SEL: usize = std::mem::offset_of!(Block, selector);
const B_SWAP: usize = std::mem::offset_of!(Block, swap_fs);
const B_HOSTFS: usize = std::mem::offset_of!(Block, host_fs);
const B_PROGFS: usize = std::mem::offset_of!(Block, prog_fs);

/// PR_SET_SYSCALL_USER_DISPATCH and PR_SYS_DISPATCH_ON (linux/prctl.h).
pub const PR_SET_SYSCALL_USER_DISPATCH: i64 = 59;
pub const PR_SYS_DISPATCH_ON: i64 = 1;
pub const PR_SYS_DISPATCH_OFF: i64 = 0;
/// `si_code` of a dispatch SIGSYS.
const SYS_USER_DISPATCH: c_int = 2;
/// ARCH_SET_GS (asm/prctl.h).
pub const ARCH_SET_GS: i64 = 0x1001;

// The exempt range holds every `syscall` instruction of ours that must
// pass whatever the selector says (the restorer, re-issued calls, and
// `lkl_tier_raw` for the handler); the kernel compares the address after
// the instruction, so each is followed by another inside the range.
std::arch::global_asm!(
    // The program's vector state put back after the router, from the
    // frame at \base (see the save above each use): one body for the
    // trap's return and a clone child's first return.
    ".macro lkl_tier_restore_vectors base",
    "    cmpq $-1, {F_VST}(\\base)",
    "    je 15f",
    "    movl {F_VST}(\\base), %edx",
    "    cmpb $0, {vavx}(%rip)",
    "    je 54f",
    "    vzeroupper",
    "    cmpb $0, {vzmm}(%rip)",
    "    je 54f",
    "    testl $0x80, %edx",
    "    jnz 52f",
    "    vpxord %xmm16, %xmm16, %xmm16",
    "    vpxord %xmm17, %xmm17, %xmm17",
    "    vpxord %xmm18, %xmm18, %xmm18",
    "    vpxord %xmm19, %xmm19, %xmm19",
    "    vpxord %xmm20, %xmm20, %xmm20",
    "    vpxord %xmm21, %xmm21, %xmm21",
    "    vpxord %xmm22, %xmm22, %xmm22",
    "    vpxord %xmm23, %xmm23, %xmm23",
    "    vpxord %xmm24, %xmm24, %xmm24",
    "    vpxord %xmm25, %xmm25, %xmm25",
    "    vpxord %xmm26, %xmm26, %xmm26",
    "    vpxord %xmm27, %xmm27, %xmm27",
    "    vpxord %xmm28, %xmm28, %xmm28",
    "    vpxord %xmm29, %xmm29, %xmm29",
    "    vpxord %xmm30, %xmm30, %xmm30",
    "    vpxord %xmm31, %xmm31, %xmm31",
    "52:",
    "    testl $0x20, %edx",
    "    jnz 54f",
    "    kxorw %k0, %k0, %k0",
    "    kxorw %k1, %k1, %k1",
    "    kxorw %k2, %k2, %k2",
    "    kxorw %k3, %k3, %k3",
    "    kxorw %k4, %k4, %k4",
    "    kxorw %k5, %k5, %k5",
    "    kxorw %k6, %k6, %k6",
    "    kxorw %k7, %k7, %k7",
    "54:",
    "    ldmxcsr {F_XSAVE}+{V_MXCSR}(\\base)",
    "    testl $0x40, %edx",
    "    jnz 56f",
    "    testl $0x4, %edx",
    "    jnz 55f",
    "    movups {F_XSAVE}+0(\\base), %xmm0",
    "    movups {F_XSAVE}+64(\\base), %xmm1",
    "    movups {F_XSAVE}+128(\\base), %xmm2",
    "    movups {F_XSAVE}+192(\\base), %xmm3",
    "    movups {F_XSAVE}+256(\\base), %xmm4",
    "    movups {F_XSAVE}+320(\\base), %xmm5",
    "    movups {F_XSAVE}+384(\\base), %xmm6",
    "    movups {F_XSAVE}+448(\\base), %xmm7",
    "    movups {F_XSAVE}+512(\\base), %xmm8",
    "    movups {F_XSAVE}+576(\\base), %xmm9",
    "    movups {F_XSAVE}+640(\\base), %xmm10",
    "    movups {F_XSAVE}+704(\\base), %xmm11",
    "    movups {F_XSAVE}+768(\\base), %xmm12",
    "    movups {F_XSAVE}+832(\\base), %xmm13",
    "    movups {F_XSAVE}+896(\\base), %xmm14",
    "    movups {F_XSAVE}+960(\\base), %xmm15",
    "    jmp 57f",
    "55:",
    "    vmovdqu {F_XSAVE}+0(\\base), %ymm0",
    "    vmovdqu {F_XSAVE}+64(\\base), %ymm1",
    "    vmovdqu {F_XSAVE}+128(\\base), %ymm2",
    "    vmovdqu {F_XSAVE}+192(\\base), %ymm3",
    "    vmovdqu {F_XSAVE}+256(\\base), %ymm4",
    "    vmovdqu {F_XSAVE}+320(\\base), %ymm5",
    "    vmovdqu {F_XSAVE}+384(\\base), %ymm6",
    "    vmovdqu {F_XSAVE}+448(\\base), %ymm7",
    "    vmovdqu {F_XSAVE}+512(\\base), %ymm8",
    "    vmovdqu {F_XSAVE}+576(\\base), %ymm9",
    "    vmovdqu {F_XSAVE}+640(\\base), %ymm10",
    "    vmovdqu {F_XSAVE}+704(\\base), %ymm11",
    "    vmovdqu {F_XSAVE}+768(\\base), %ymm12",
    "    vmovdqu {F_XSAVE}+832(\\base), %ymm13",
    "    vmovdqu {F_XSAVE}+896(\\base), %ymm14",
    "    vmovdqu {F_XSAVE}+960(\\base), %ymm15",
    "    jmp 57f",
    "56:",
    "    vmovdqu64 {F_XSAVE}+0(\\base), %zmm0",
    "    vmovdqu64 {F_XSAVE}+64(\\base), %zmm1",
    "    vmovdqu64 {F_XSAVE}+128(\\base), %zmm2",
    "    vmovdqu64 {F_XSAVE}+192(\\base), %zmm3",
    "    vmovdqu64 {F_XSAVE}+256(\\base), %zmm4",
    "    vmovdqu64 {F_XSAVE}+320(\\base), %zmm5",
    "    vmovdqu64 {F_XSAVE}+384(\\base), %zmm6",
    "    vmovdqu64 {F_XSAVE}+448(\\base), %zmm7",
    "    vmovdqu64 {F_XSAVE}+512(\\base), %zmm8",
    "    vmovdqu64 {F_XSAVE}+576(\\base), %zmm9",
    "    vmovdqu64 {F_XSAVE}+640(\\base), %zmm10",
    "    vmovdqu64 {F_XSAVE}+704(\\base), %zmm11",
    "    vmovdqu64 {F_XSAVE}+768(\\base), %zmm12",
    "    vmovdqu64 {F_XSAVE}+832(\\base), %zmm13",
    "    vmovdqu64 {F_XSAVE}+896(\\base), %zmm14",
    "    vmovdqu64 {F_XSAVE}+960(\\base), %zmm15",
    "57:",
    "    testl $0x80, %edx",
    "    jz 58f",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+0(\\base), %zmm16",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+64(\\base), %zmm17",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+128(\\base), %zmm18",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+192(\\base), %zmm19",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+256(\\base), %zmm20",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+320(\\base), %zmm21",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+384(\\base), %zmm22",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+448(\\base), %zmm23",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+512(\\base), %zmm24",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+576(\\base), %zmm25",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+640(\\base), %zmm26",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+704(\\base), %zmm27",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+768(\\base), %zmm28",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+832(\\base), %zmm29",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+896(\\base), %zmm30",
    "    vmovdqu64 {F_XSAVE}+{V_HI}+960(\\base), %zmm31",
    "58:",
    "    testl $0x20, %edx",
    "    jz 59f",
    "    kmovq {F_XSAVE}+{V_K}+0(\\base), %k0",
    "    kmovq {F_XSAVE}+{V_K}+8(\\base), %k1",
    "    kmovq {F_XSAVE}+{V_K}+16(\\base), %k2",
    "    kmovq {F_XSAVE}+{V_K}+24(\\base), %k3",
    "    kmovq {F_XSAVE}+{V_K}+32(\\base), %k4",
    "    kmovq {F_XSAVE}+{V_K}+40(\\base), %k5",
    "    kmovq {F_XSAVE}+{V_K}+48(\\base), %k6",
    "    kmovq {F_XSAVE}+{V_K}+56(\\base), %k7",
    "59:",
    "    jmp 16f",
    "15:",
    "    movl ${XMASK}, %eax",
    "    xorl %edx, %edx",
    "    xrstor64 {F_XSAVE}(\\base)",
    "16:",
    ".endm",
    // XRSTOR faults on a header with reserved bits set: the header of the
    // frame's image zeroed (rdx = 0) before an XSAVE writes it (the
    // hand-saved area overlaps it).
    ".macro lkl_tier_xsave_header",
    "    .irp o,0,8,16,24,32,40,48,56",
    "    movq %rdx, {F_XSAVE}+512+\\o(%rsp)",
    "    .endr",
    ".endm",
    ".text",
    ".p2align 4",
    ".globl lkl_tier_exempt_start",
    ".hidden lkl_tier_exempt_start",
    "lkl_tier_exempt_start:",
    ".globl lkl_tier_restorer",
    ".hidden lkl_tier_restorer",
    "lkl_tier_restorer:",
    "    movl $15, %eax",
    "    syscall",
    "    ud2",
    ".globl lkl_tier_reissue",
    ".hidden lkl_tier_reissue",
    "lkl_tier_reissue:",
    "    syscall",
    "    ud2",
    ".globl lkl_tier_raw",
    ".hidden lkl_tier_raw",
    "lkl_tier_raw:",
    "    movq %rdi, %rax",
    "    movq %rsi, %rdi",
    "    movq %rdx, %rsi",
    "    movq %rcx, %rdx",
    "    movq %r8, %r10",
    "    movq %r9, %r8",
    "    movq 8(%rsp), %r9",
    "    syscall",
    "    ret",
    ".globl lkl_tier_exempt_end",
    ".hidden lkl_tier_exempt_end",
    "lkl_tier_exempt_end:",
    "    ud2",
    // The trampoline: rsp = rdi = the frame.
    ".p2align 4",
    ".globl lkl_tier_trampoline",
    ".hidden lkl_tier_trampoline",
    "lkl_tier_trampoline:",
    // The selector is ALLOW already (the handler and lkl_tier_fast set it).
    "    movq {F_BLOCK}(%rsp), %rax",
    // A static program's %fs is its own TLS: ours while we run.
    "    cmpb $0, {B_SWAP}(%rax)",
    "    je 5f",
    "    rdfsbase %rcx",
    "    movq %rcx, {F_FS}(%rsp)",
    "    movq %rcx, {B_PROGFS}(%rax)",
    "    movq {B_HOSTFS}(%rax), %rcx",
    "    wrfsbase %rcx",
    "5:",
    // The program's vector state (see VMODE): by hand, the components in
    // use (XINUSE, `xgetbv` with ecx = 1) and MXCSR, where the CPU allows;
    // else XSAVE.
    "    cmpb $0, {vmode}(%rip)",
    "    je 13f",
    // VNOX: no XINUSE asked; zmm0-31 and k0-7 saved whole, then whether
    // the upper halves of zmm0-15 hold anything.
    "    cmpb $0, {vnox}(%rip)",
    "    jne 60f",
    "    movl $1, %ecx",
    "    xgetbv",
    "    movl %eax, {F_VST}(%rsp)",
    "    movl $0, {F_VST}+4(%rsp)",
    "    testl ${V_XSAVE}, %eax",
    "    jnz 14f",
    "    stmxcsr {F_XSAVE}+{V_MXCSR}(%rsp)",
    "    testl $0x40, %eax",
    "    jnz 42f",
    "    testl $0x4, %eax",
    "    jnz 41f",
    "    movups %xmm0, {F_XSAVE}+0(%rsp)",
    "    movups %xmm1, {F_XSAVE}+64(%rsp)",
    "    movups %xmm2, {F_XSAVE}+128(%rsp)",
    "    movups %xmm3, {F_XSAVE}+192(%rsp)",
    "    movups %xmm4, {F_XSAVE}+256(%rsp)",
    "    movups %xmm5, {F_XSAVE}+320(%rsp)",
    "    movups %xmm6, {F_XSAVE}+384(%rsp)",
    "    movups %xmm7, {F_XSAVE}+448(%rsp)",
    "    movups %xmm8, {F_XSAVE}+512(%rsp)",
    "    movups %xmm9, {F_XSAVE}+576(%rsp)",
    "    movups %xmm10, {F_XSAVE}+640(%rsp)",
    "    movups %xmm11, {F_XSAVE}+704(%rsp)",
    "    movups %xmm12, {F_XSAVE}+768(%rsp)",
    "    movups %xmm13, {F_XSAVE}+832(%rsp)",
    "    movups %xmm14, {F_XSAVE}+896(%rsp)",
    "    movups %xmm15, {F_XSAVE}+960(%rsp)",
    "    jmp 43f",
    "41:",
    "    vmovdqu %ymm0, {F_XSAVE}+0(%rsp)",
    "    vmovdqu %ymm1, {F_XSAVE}+64(%rsp)",
    "    vmovdqu %ymm2, {F_XSAVE}+128(%rsp)",
    "    vmovdqu %ymm3, {F_XSAVE}+192(%rsp)",
    "    vmovdqu %ymm4, {F_XSAVE}+256(%rsp)",
    "    vmovdqu %ymm5, {F_XSAVE}+320(%rsp)",
    "    vmovdqu %ymm6, {F_XSAVE}+384(%rsp)",
    "    vmovdqu %ymm7, {F_XSAVE}+448(%rsp)",
    "    vmovdqu %ymm8, {F_XSAVE}+512(%rsp)",
    "    vmovdqu %ymm9, {F_XSAVE}+576(%rsp)",
    "    vmovdqu %ymm10, {F_XSAVE}+640(%rsp)",
    "    vmovdqu %ymm11, {F_XSAVE}+704(%rsp)",
    "    vmovdqu %ymm12, {F_XSAVE}+768(%rsp)",
    "    vmovdqu %ymm13, {F_XSAVE}+832(%rsp)",
    "    vmovdqu %ymm14, {F_XSAVE}+896(%rsp)",
    "    vmovdqu %ymm15, {F_XSAVE}+960(%rsp)",
    "    jmp 43f",
    "42:",
    "    vmovdqu64 %zmm0, {F_XSAVE}+0(%rsp)",
    "    vmovdqu64 %zmm1, {F_XSAVE}+64(%rsp)",
    "    vmovdqu64 %zmm2, {F_XSAVE}+128(%rsp)",
    "    vmovdqu64 %zmm3, {F_XSAVE}+192(%rsp)",
    "    vmovdqu64 %zmm4, {F_XSAVE}+256(%rsp)",
    "    vmovdqu64 %zmm5, {F_XSAVE}+320(%rsp)",
    "    vmovdqu64 %zmm6, {F_XSAVE}+384(%rsp)",
    "    vmovdqu64 %zmm7, {F_XSAVE}+448(%rsp)",
    "    vmovdqu64 %zmm8, {F_XSAVE}+512(%rsp)",
    "    vmovdqu64 %zmm9, {F_XSAVE}+576(%rsp)",
    "    vmovdqu64 %zmm10, {F_XSAVE}+640(%rsp)",
    "    vmovdqu64 %zmm11, {F_XSAVE}+704(%rsp)",
    "    vmovdqu64 %zmm12, {F_XSAVE}+768(%rsp)",
    "    vmovdqu64 %zmm13, {F_XSAVE}+832(%rsp)",
    "    vmovdqu64 %zmm14, {F_XSAVE}+896(%rsp)",
    "    vmovdqu64 %zmm15, {F_XSAVE}+960(%rsp)",
    "43:",
    "    testl $0x80, %eax",
    "    jz 44f",
    "    vmovdqu64 %zmm16, {F_XSAVE}+{V_HI}+0(%rsp)",
    "    vmovdqu64 %zmm17, {F_XSAVE}+{V_HI}+64(%rsp)",
    "    vmovdqu64 %zmm18, {F_XSAVE}+{V_HI}+128(%rsp)",
    "    vmovdqu64 %zmm19, {F_XSAVE}+{V_HI}+192(%rsp)",
    "    vmovdqu64 %zmm20, {F_XSAVE}+{V_HI}+256(%rsp)",
    "    vmovdqu64 %zmm21, {F_XSAVE}+{V_HI}+320(%rsp)",
    "    vmovdqu64 %zmm22, {F_XSAVE}+{V_HI}+384(%rsp)",
    "    vmovdqu64 %zmm23, {F_XSAVE}+{V_HI}+448(%rsp)",
    "    vmovdqu64 %zmm24, {F_XSAVE}+{V_HI}+512(%rsp)",
    "    vmovdqu64 %zmm25, {F_XSAVE}+{V_HI}+576(%rsp)",
    "    vmovdqu64 %zmm26, {F_XSAVE}+{V_HI}+640(%rsp)",
    "    vmovdqu64 %zmm27, {F_XSAVE}+{V_HI}+704(%rsp)",
    "    vmovdqu64 %zmm28, {F_XSAVE}+{V_HI}+768(%rsp)",
    "    vmovdqu64 %zmm29, {F_XSAVE}+{V_HI}+832(%rsp)",
    "    vmovdqu64 %zmm30, {F_XSAVE}+{V_HI}+896(%rsp)",
    "    vmovdqu64 %zmm31, {F_XSAVE}+{V_HI}+960(%rsp)",
    "44:",
    "    testl $0x20, %eax",
    "    jz 45f",
    "    kmovq %k0, {F_XSAVE}+{V_K}+0(%rsp)",
    "    kmovq %k1, {F_XSAVE}+{V_K}+8(%rsp)",
    "    kmovq %k2, {F_XSAVE}+{V_K}+16(%rsp)",
    "    kmovq %k3, {F_XSAVE}+{V_K}+24(%rsp)",
    "    kmovq %k4, {F_XSAVE}+{V_K}+32(%rsp)",
    "    kmovq %k5, {F_XSAVE}+{V_K}+40(%rsp)",
    "    kmovq %k6, {F_XSAVE}+{V_K}+48(%rsp)",
    "    kmovq %k7, {F_XSAVE}+{V_K}+56(%rsp)",
    "45:",
    "    cmpb $0, {vnox}(%rip)",
    "    je 12f",
    // The registers are saved (the router may change them): the upper
    // halves of zmm0-15 (bits 128-511), ORed together; all zero: the way
    // back reloads xmm0-15 after `vzeroupper` (bit 6 off), as when XINUSE
    // said they were in their initial state.
    "    vpord %zmm1, %zmm0, %zmm0",
    "    vpord %zmm3, %zmm2, %zmm2",
    "    vpord %zmm5, %zmm4, %zmm4",
    "    vpord %zmm7, %zmm6, %zmm6",
    "    vpord %zmm9, %zmm8, %zmm8",
    "    vpord %zmm11, %zmm10, %zmm10",
    "    vpord %zmm13, %zmm12, %zmm12",
    "    vpord %zmm15, %zmm14, %zmm14",
    "    vpord %zmm2, %zmm0, %zmm0",
    "    vpord %zmm6, %zmm4, %zmm4",
    "    vpord %zmm10, %zmm8, %zmm8",
    "    vpord %zmm14, %zmm12, %zmm12",
    "    vpord %zmm4, %zmm0, %zmm0",
    "    vpord %zmm12, %zmm8, %zmm8",
    "    vpord %zmm8, %zmm0, %zmm0",
    "    vextracti64x4 $1, %zmm0, %ymm1",
    "    vextracti128 $1, %ymm0, %xmm2",
    "    vpor %ymm2, %ymm1, %ymm1",
    "    vptest %ymm1, %ymm1",
    "    jnz 12f",
    "    andl $0xffffffbf, {F_VST}(%rsp)",
    "    jmp 12f",
    "60:",
    "    movl ${V_NOX}, %eax",
    "    movq %rax, {F_VST}(%rsp)",
    "    stmxcsr {F_XSAVE}+{V_MXCSR}(%rsp)",
    "    jmp 42b",
    // x87 in use: XSAVE, never XSAVEOPT, whose "unchanged since the last
    // XRSTOR from here" could take bytes this frame got by hand for the
    // program's.
    "14:",
    "    movq $-1, {F_VST}(%rsp)",
    "    movl ${XMASK}, %eax",
    "    xorl %edx, %edx",
    "    lkl_tier_xsave_header",
    "    jmp 11f",
    "13:",
    "    movq $-1, {F_VST}(%rsp)",
    "    movl ${XMASK}, %eax",
    "    xorl %edx, %edx",
    "    lkl_tier_xsave_header",
    // XSAVEOPT where the CPU has it: components in their initial state,
    // or unchanged since the XRSTOR below last restored them from this
    // same frame (the next call of a hot site), are not written again.
    // The area is never changed in between but for the header's reserved
    // bytes, which XSAVEOPT leaves alone and the frame's builders zero.
    "    cmpb $0, {xsaveopt}(%rip)",
    "    je 11f",
    "    xsaveopt64 {F_XSAVE}(%rsp)",
    "    jmp 12f",
    "11:",
    "    xsave64 {F_XSAVE}(%rsp)",
    "12:",
    "    movq %rsp, %rdi",
    "    call {route}",
    "    lkl_tier_restore_vectors %rsp",
    "    movq {F_BLOCK}(%rsp), %r11",
    "    cmpb $0, {B_SWAP}(%r11)",
    "    je 6f",
    "    movq {F_FS}(%rsp), %rcx",
    "    wrfsbase %rcx",
    "6:",
    "    movq {F_RDI}(%rsp), %rdi",
    "    movq {F_RSI}(%rsp), %rsi",
    "    movq {F_RDX}(%rsp), %rdx",
    "    movq {F_R10}(%rsp), %r10",
    "    movq {F_R8}(%rsp), %r8",
    "    movq {F_R9}(%rsp), %r9",
    "    movq {F_RBX}(%rsp), %rbx",
    "    movq {F_RBP}(%rsp), %rbp",
    "    movq {F_R12}(%rsp), %r12",
    "    movq {F_R13}(%rsp), %r13",
    "    movq {F_R14}(%rsp), %r14",
    "    movq {F_R15}(%rsp), %r15",
    "    movq {F_BLOCK}(%rsp), %r11",
    "    movq {F_RIP}(%rsp), %rcx",
    "    movq {F_RAX}(%rsp), %rax",
    "    movq {F_RSP}(%rsp), %rsp",
    // From here no frame of ours is live: a signal arriving now runs on
    // the program's stack, and a trap from its handler starts afresh.
    "    movb $1, {B_SEL}(%r11)",
    "    jmp *%rcx",
    // lkl_tier_clone(frame) -> i64: issues the frame's clone/clone3/fork/
    // vfork with the program's own arguments (selector ALLOW: we are in
    // the router). The parent returns the result; the child arms itself
    // and jumps to the program.
    ".p2align 4",
    ".globl lkl_tier_clone",
    ".hidden lkl_tier_clone",
    "lkl_tier_clone:",
    "    pushq %r12",
    "    movq %rdi, %r12",
    "    movq {F_RAX}(%r12), %rax",
    "    movq {F_RDI}(%r12), %rdi",
    "    movq {F_RSI}(%r12), %rsi",
    "    movq {F_RDX}(%r12), %rdx",
    "    movq {F_R10}(%r12), %r10",
    "    movq {F_R8}(%r12), %r8",
    "    movq {F_R9}(%r12), %r9",
    "    syscall",
    "    testq %rax, %rax",
    "    jz 1f",
    "    popq %r12",
    "    ret",
    // The child: Syscall User Dispatch is off; r12 = the frame (its own
    // copy when it has memory of its own). Nothing is pushed: a new stack
    // may hold what the program put there for its child.
    "1:",
    "    movq %rsp, %r13",
    "    movq {F_CHILD_BLOCK}(%r12), %rsi",
    "    testq %rsi, %rsi",
    "    jz 2f",
    "    movl ${ARCH_SET_GS}, %edi",
    "    movl $158, %eax",
    "    syscall",
    "2:",
    "    movq {F_CHILD_SEL}(%r12), %r8",
    "    movb $1, (%r8)",
    "    movl ${PR_SUD}, %edi",
    "    movl $1, %esi",
    "    leaq lkl_tier_exempt_start(%rip), %rdx",
    "    leaq lkl_tier_exempt_end(%rip), %r10",
    "    subq %rdx, %r10",
    "    movl $157, %eax",
    "    syscall",
    "    testq %rax, %rax",
    "    jz 3f",
    // Arming failed in the child: it must not run unrouted.
    "    movl $-1, %edi",
    "    movl $231, %eax",
    "    syscall",
    "3:",
    // A child with memory of its own (a fork): the kernel stayed with the
    // parent, as for glibc's fork (whose atfork handler says so).
    "    cmpq $0, {F_CHILD_BLOCK}(%r12)",
    "    jne 8f",
    "    andq $-16, %rsp",
    "    movq %r12, %rdi",
    "    call {forked}",
    "8:",
    "    cmpq $0, {F_CHILD_KEEP_SP}(%r12)",
    "    jne 4f",
    "    movq {F_RSP}(%r12), %r13",
    "4:",
    "    cmpq $0, {F_CHILD_FS}(%r12)",
    "    je 7f",
    "    movq {F_FS}(%r12), %rcx",
    "    wrfsbase %rcx",
    "7:",
    // Rewritten sites route on this thread only with this %fs (rewrite.rs).
    "    cmpb $0, {rw_on}(%rip)",
    "    je 10f",
    "    rdgsbase %rcx",
    "    rdfsbase %rdx",
    "    movq %rdx, {B_OWNER}(%rcx)",
    "10:",
    "    lkl_tier_restore_vectors %r12",
    "    movq %r12, %r11",
    "    movq %r13, %rsp",
    "    movq {F_RDI}(%r11), %rdi",
    "    movq {F_RSI}(%r11), %rsi",
    "    movq {F_RDX}(%r11), %rdx",
    "    movq {F_R10}(%r11), %r10",
    "    movq {F_R8}(%r11), %r8",
    "    movq {F_R9}(%r11), %r9",
    "    movq {F_RBX}(%r11), %rbx",
    "    movq {F_RBP}(%r11), %rbp",
    "    movq {F_R12}(%r11), %r12",
    "    movq {F_R13}(%r11), %r13",
    "    movq {F_R14}(%r11), %r14",
    "    movq {F_R15}(%r11), %r15",
    "    movq {F_RIP}(%r11), %rcx",
    "    xorl %eax, %eax",
    "    movl $1, {F_CHILD_DONE}(%r11)",
    "    jmp *%rcx",
    // lkl_tier_fast: the stubs of rewritten sites (rewrite.rs) jump here
    // with the program's registers, its rsp, selector BLOCK, r11 = the
    // thread's block, rcx = the address after the site's `syscall`. It
    // builds the frame the SIGSYS handler would (on the thread's own
    // stack, below the live part when already on it) and enters the
    // trampoline. rt_sigreturn and exit (numbers set before the site)
    // go to the site's own `syscall` instead: they trap as always.
    ".p2align 4",
    ".globl lkl_tier_fast",
    ".hidden lkl_tier_fast",
    "lkl_tier_fast:",
    "    cmpq $15, %rax",
    "    je 9f",
    "    cmpq $60, %rax",
    "    je 9f",
    // Calls the router would give the host as they are, and that use no
    // state of ours: issued here, on the program's stack, with the
    // selector at ALLOW around them (rewrite.rs, DIRECT).
    "    cmpq $202, %rax",
    "    je 20f",
    "    cmpq $24, %rax",
    "    je 20f",
    "    cmpq $35, %rax",
    "    je 20f",
    "    cmpq $230, %rax",
    "    je 20f",
    "    cmpq $28, %rax",
    "    je 20f",
    "    cmpq $39, %rax",
    "    je 20f",
    "    cmpq $186, %rax",
    "    je 20f",
    "    cmpq $110, %rax",
    "    je 20f",
    "    cmpq $318, %rax",
    "    je 20f",
    // ALLOW before the frame is built (as the handler does): a signal
    // handler of the program that runs from here until the trampoline is
    // done makes its calls to the host, and never takes the frame's place.
    "    movb $0, {B_SEL}(%r11)",
    "    cmpq {B_LO}(%r11), %rsp",
    "    jb 1f",
    "    cmpq {B_TOP}(%r11), %rsp",
    "    jae 1f",
    "    leaq -256(%rsp), %r11",
    "    jmp 2f",
    "1:",
    "    movq {B_TOP}(%r11), %r11",
    "2:",
    "    subq {frame_size}(%rip), %r11",
    "    andq $-64, %r11",
    "    movq %rsp, {F_RSP}(%r11)",
    "    movq %r11, %rsp",
    "    movq %rcx, {F_RIP}(%rsp)",
    "    movq %rax, {F_RAX}(%rsp)",
    "    movq %rdi, {F_RDI}(%rsp)",
    "    movq %rsi, {F_RSI}(%rsp)",
    "    movq %rdx, {F_RDX}(%rsp)",
    "    movq %r10, {F_R10}(%rsp)",
    "    movq %r8, {F_R8}(%rsp)",
    "    movq %r9, {F_R9}(%rsp)",
    "    movq %rbx, {F_RBX}(%rsp)",
    "    movq %rbp, {F_RBP}(%rsp)",
    "    movq %r12, {F_R12}(%rsp)",
    "    movq %r13, {F_R13}(%rsp)",
    "    movq %r14, {F_R14}(%rsp)",
    "    movq %r15, {F_R15}(%rsp)",
    // The clone fields are the router's to fill (route::spawn), `fs` the
    // trampoline's (when it swaps %fs), the xsave header its own (before
    // an XSAVE): only what the router reads is written here. The call is
    // counted (Block::fast_calls) here.
    "    rdgsbase %rcx",
    "    movq %rcx, {F_BLOCK}(%rsp)",
    "    movq $1, {F_VIA}(%rsp)",
    "    incq {B_FAST}(%rcx)",
    "    jmp lkl_tier_trampoline",
    "9:",
    "    subq $2, %rcx",
    "    jmp *%rcx",
    // A signal handler that runs during the call finds ALLOW (its stubs
    // take the host's way and leave fast_ret alone); a restarted call
    // starts again at this syscall.
    "20:",
    "    movb $0, {B_SEL}(%r11)",
    "    movq %rcx, {B_RET}(%r11)",
    "    incq {B_FAST}(%r11)",
    "    syscall",
    "    rdgsbase %r11",
    "    movq {B_RET}(%r11), %rcx",
    "    movb $1, {B_SEL}(%r11)",
    "    jmp *%rcx",
    F_RAX = const F_RAX,
    F_RDI = const F_RDI,
    F_RSI = const F_RSI,
    F_RDX = const F_RDX,
    F_R10 = const F_R10,
    F_R8 = const F_R8,
    F_R9 = const F_R9,
    F_RBX = const F_RBX,
    F_RBP = const F_RBP,
    F_R12 = const F_R12,
    F_R13 = const F_R13,
    F_R14 = const F_R14,
    F_R15 = const F_R15,
    F_RSP = const F_RSP,
    F_RIP = const F_RIP,
    F_BLOCK = const F_BLOCK,
    F_CHILD_BLOCK = const F_CHILD_BLOCK,
    F_CHILD_SEL = const F_CHILD_SEL,
    F_CHILD_KEEP_SP = const F_CHILD_KEEP_SP,
    F_CHILD_DONE = const F_CHILD_DONE,
    F_XSAVE = const F_XSAVE,
    B_SEL = const B_SEL,
    B_SWAP = const B_SWAP,
    B_HOSTFS = const B_HOSTFS,
    B_PROGFS = const B_PROGFS,
    F_FS = const F_FS,
    F_CHILD_FS = const F_CHILD_FS,
    ARCH_SET_GS = const ARCH_SET_GS,
    PR_SUD = const PR_SET_SYSCALL_USER_DISPATCH,
    route = sym lkl_tier_route,
    frame_size = sym FRAME_SIZE,
    rw_on = sym super::rewrite::ON,
    xsaveopt = sym XSAVEOPT,
    XMASK = const XMASK,
    vmode = sym VMODE,
    vavx = sym VAVX,
    vzmm = sym VZMM,
    vnox = sym VNOX,
    V_NOX = const V_NOX,
    F_VST = const F_VST,
    V_XSAVE = const V_XSAVE,
    V_MXCSR = const V_MXCSR,
    V_HI = const V_HI,
    V_K = const V_K,
    F_VIA = const F_VIA,
    B_LO = const B_LO,
    B_TOP = const B_TOP,
    B_OWNER = const B_OWNER,
    B_RET = const B_RET,
    B_FAST = const B_FAST,
    forked = sym lkl_tier_child_forked,
    options(att_syntax)
);

extern "C" {
    static lkl_tier_exempt_start: u8;
    static lkl_tier_exempt_end: u8;
    fn lkl_tier_restorer();
    fn lkl_tier_reissue();
    fn lkl_tier_trampoline();
    /// Issues the clone-family call in `frame` (see the assembly).
    pub fn lkl_tier_clone(frame: *mut Frame) -> i64;
}

/// Called by the trampoline (selector ALLOW, the thread's own stack): the
/// call routed, counted, and its site considered for rewriting when it
/// came through the trap.
extern "C" fn lkl_tier_route(f: *mut Frame) {
    // SAFETY: the frame the handler or lkl_tier_fast wrote.
    let (via, nr, rip) = unsafe { ((*f).via, (*f).rax, (*f).rip) };
    // A call through a rewritten site was counted by lkl_tier_fast.
    super::rewrite::before(via != 0, nr);
    super::route::lkl_tier_dispatch(f);
    if via == 0 {
        super::rewrite::after_trap(rip as usize, nr);
    }
}

/// Called by a fork child (its own memory) before it runs the program,
/// on the program's TLS (atomics and plain memory only).
extern "C" fn lkl_tier_child_forked(f: *mut Frame) {
    // In a tree the kernel is the server's: the child keeps it (the fork
    // hook, process.rs, or `route::spawn` had the server fork its kernel
    // process; the latter's token is taken up here).
    if crate::hijack::tree::client() {
        crate::hijack::tree::tier_fork_child();
        crate::hijack::fdtable::after_fork_child();
    } else {
        lkl::sys::set_forked();
    }
    // SAFETY: the child's copy of the frame and of its block.
    unsafe { super::twin::after_fork((*f).block) };
}

/// The exempt range: (start, length).
pub fn exempt_range() -> (usize, usize) {
    let s = std::ptr::addr_of!(lkl_tier_exempt_start) as usize;
    let e = std::ptr::addr_of!(lkl_tier_exempt_end) as usize;
    (s, e - s)
}

/// Our SIGSYS restorer (in the exempt range).
pub fn restorer() -> usize {
    lkl_tier_restorer as *const () as usize
}

/// The state components the trampoline saves and restores around a
/// routed call: x87, SSE, AVX, AVX-512 (opmask, ZMM upper halves, ZMM16-31),
/// what the router's code may change. Not PKRU (restoring it is slow and
/// our code never changes it), nor MPX, AMX or the supervisor components.
const XMASK: u32 = 0b1110_0111;

/// The XINUSE bits that make the trampoline use XSAVE: x87 (our code
/// never uses it, but a program whose x87 state is not in its initial
/// state gets it kept exactly).
const V_XSAVE: u32 = 0b1;
/// The hand-saved area (at the frame's `xsave` place): zmm/ymm/xmm 0-15
/// at 64-byte strides, zmm16-31 at `V_HI`, k0-7 at `V_K`, MXCSR at
/// `V_MXCSR`.
const V_HI: usize = 1024;
const V_K: usize = 2048;
const V_MXCSR: usize = 2112;
/// The bytes the hand-saved area needs.
pub const V_AREA: usize = 2176;

/// The trampoline keeps the program's vector state by hand (set when
/// arming): XSAVE/XRSTOR cost about 150 ns a pair on the machine the
/// figures come from, most of a routed call's overhead. The router's
/// code (Rust and the kernel's C, built for baseline x86-64) touches
/// xmm0-15 only, but the libc functions it calls (`memcpy`, `memset`,
/// `strlen`, ... selected by the CPU) may use ymm0-15 (and `vzeroupper`),
/// zmm16-31 and the opmask registers; nothing on the way uses x87 or MMX
/// (the library has no such instruction; libc's string functions and
/// system-call wrappers neither). So, from XINUSE (`xgetbv` with ecx = 1:
/// the components not in their initial state) before the call: MXCSR and
/// xmm0-15 always, ymm0-15 when AVX is in use, zmm0-15 when their upper
/// halves are, zmm16-31 and k0-7 when in use. After it, the upper
/// halves of ymm/zmm0-15 go back to their initial state (`vzeroupper`),
/// so do zmm16-31 and k0-7 when they were not in use (zeroed: their
/// initial values), then the saved registers are reloaded (MXCSR with
/// `ldmxcsr` of the saved value: on the AMD EPYC the figures come from,
/// `stmxcsr` is microcoded, about 10 cycles, `ldmxcsr` of an unchanged
/// value about 1, so reading it again to compare cost more). Needs XGETBV with ecx = 1, and with
/// AVX-512 enabled AVX512BW (64-bit `kmovq`); else, or when the
/// program's x87 state is in use, XSAVE as before.
pub static VMODE: AtomicBool = AtomicBool::new(false);

/// With `VMODE` and AVX-512, on AMD's CPUs (arm.rs): the trampoline does
/// not ask XINUSE (`xgetbv` is about 25 ns of a routed call on the AMD
/// EPYC the figures come from; every glibc program there has zmm16-31
/// and k0-7 in use from its start, so asking saved nothing) and saves
/// MXCSR, zmm0-31 and k0-7 whole. The way back reloads them all; the
/// upper halves of zmm0-15 only when one of them was not zero, else
/// `vzeroupper` puts them back in their initial state, as with XINUSE.
/// x87 is not saved: nothing on the router's way uses it (see `VMODE`);
/// zmm16-31 and k0-7 are left in use when they were not (their values
/// exact; no cost on these CPUs).
pub static VNOX: AtomicBool = AtomicBool::new(false);
/// The components VNOX saves (as XINUSE bits): ZMM_Hi256, Hi16_ZMM,
/// opmask, SSE.
const V_NOX: u32 = 0b1110_0010;

/// With `VMODE`: AVX's state is enabled (`vzeroupper` exists), and
/// AVX-512's (zmm16-31, k0-7).
pub static VAVX: AtomicBool = AtomicBool::new(false);
pub static VZMM: AtomicBool = AtomicBool::new(false);

/// The CPU has XSAVEOPT (set when arming): the trampoline saves the
/// program's vector state without the components in their initial state
/// or unchanged since the trampoline restored them from the same frame.
pub static XSAVEOPT: AtomicBool = AtomicBool::new(false);

/// The size of a frame with its `xsave` image (set when arming).
pub static FRAME_SIZE: AtomicUsize = AtomicUsize::new(0);

/// How many calls came through the trap (for the figures).
pub static TRAPS: AtomicUsize = AtomicUsize::new(0);

/// Gives a thread's block back when its thread exits (set by arm.rs).
pub static RELEASE: AtomicUsize = AtomicUsize::new(0);

/// The handler. Async-signal-safe: it reads and writes the saved context
/// and the thread's block, nothing else (no allocation, no lock but the
/// free list's, which no code of ours holds on a trapping thread).
pub unsafe extern "C" fn on_sigsys(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the host kernel passes a valid siginfo and ucontext.
    let code = unsafe { (*info).si_code };
    if code != SYS_USER_DISPATCH {
        // SAFETY: as above.
        unsafe { forward(sig, info, ctx) };
        return;
    }
    // SAFETY: as above.
    let uc = unsafe { &mut *ctx.cast::<libc::ucontext_t>() };
    let g = &mut uc.uc_mcontext.gregs;
    let nr = g[libc::REG_RAX as usize];
    match nr {
        15 => {
            // rt_sigreturn: issued again where it passes, same registers.
            g[libc::REG_RIP as usize] = lkl_tier_reissue as *const () as i64;
            return;
        }
        60 => {
            let release = RELEASE.load(Ordering::Acquire);
            if release != 0 {
                // SAFETY: RELEASE holds `fn()` (arm.rs), async-signal-safe.
                let f: fn() = unsafe { std::mem::transmute::<usize, fn()>(release) };
                f();
            }
            // Nothing may run on this thread between here and its end: its
            // block may already be another thread's.
            // SAFETY: sigset_t is plain bytes.
            unsafe {
                std::ptr::write_bytes(
                    std::ptr::addr_of_mut!(uc.uc_sigmask).cast::<u8>(),
                    0xff,
                    std::mem::size_of::<libc::sigset_t>(),
                )
            };
            g[libc::REG_RIP as usize] = lkl_tier_reissue as *const () as i64;
            return;
        }
        _ => {}
    }
    TRAPS.fetch_add(1, Ordering::Relaxed);
    let b = gs_block();
    if super::rewrite::on() {
        // The thread's %fs: a rewritten site routes its calls only where
        // it matches (rewrite.rs).
        let fs: usize;
        // SAFETY: FSGSBASE is there (rewrite::init checked it); the
        // thread's live block.
        unsafe {
            std::arch::asm!("rdfsbase {}", out(reg) fs, options(nostack, nomem, preserves_flags));
            (*b).owner_fs = fs;
        }
    }
    // SAFETY: a trapping thread is armed, so %gs is its live block.
    let (lo, top) = unsafe { ((*b).stack_lo, (*b).stack_top) };
    let rsp = g[libc::REG_RSP as usize] as usize;
    // Already on our stack (a handler of the program running in a routed
    // call that trapped again): continue below, past a red zone.
    let top = if (lo..top).contains(&rsp) {
        rsp - 256
    } else {
        top
    };
    let size = FRAME_SIZE.load(Ordering::Relaxed);
    let f = ((top - size) & !63) as *mut Frame;
    let r = |i: c_int| g[i as usize] as u64;
    // SAFETY: `f` and its xsave image lie in this thread's stack, unused
    // below `top`.
    unsafe {
        f.write(Frame {
            rax: r(libc::REG_RAX),
            rdi: r(libc::REG_RDI),
            rsi: r(libc::REG_RSI),
            rdx: r(libc::REG_RDX),
            r10: r(libc::REG_R10),
            r8: r(libc::REG_R8),
            r9: r(libc::REG_R9),
            rbx: r(libc::REG_RBX),
            rbp: r(libc::REG_RBP),
            r12: r(libc::REG_R12),
            r13: r(libc::REG_R13),
            r14: r(libc::REG_R14),
            r15: r(libc::REG_R15),
            rsp: r(libc::REG_RSP),
            rip: r(libc::REG_RIP),
            block: b,
            child_block: std::ptr::null_mut(),
            child_sel: std::ptr::null_mut(),
            child_keep_sp: 0,
            child_done: AtomicU32::new(0),
            fs: 0,
            child_fs: 0,
            via: 0,
            vstate: 0,
        });
    }
    // ALLOW from here: a signal handler of the program that runs before
    // the trampoline has set it (on an alternate stack: Go's) would trap
    // and put its frame where this one lies; its calls go to the host.
    // SAFETY: the thread's live block.
    unsafe { std::ptr::addr_of_mut!((*b).selector).write_volatile(super::gate::ALLOW) };
    g[libc::REG_RSP as usize] = f as i64;
    g[libc::REG_RDI as usize] = f as i64;
    g[libc::REG_RIP as usize] = lkl_tier_trampoline as *const () as i64;
}

/// The block `%gs` points at.
fn gs_block() -> *mut Block {
    let b: usize;
    // SAFETY: reads %gs:ME on an armed thread.
    unsafe {
        std::arch::asm!("mov {}, qword ptr gs:[{me}]", out(reg) b, me = const super::gate::ME,
            options(nostack, readonly, preserves_flags));
    }
    b as *mut Block
}

/// A SIGSYS that is not a dispatch: the program's handler, as if it had
/// been installed (it was only recorded); default or ignore otherwise.
unsafe fn forward(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let a = super::gate::sigsys_action();
    if a.handler == libc::SIG_IGN {
        return;
    }
    if a.handler == libc::SIG_DFL {
        // The default action (core dump): our handler out of the way, then
        // the signal again.
        let dfl = super::gate::KSigaction::default();
        raw(
            libc::SYS_rt_sigaction,
            [sig.into(), &dfl as *const _ as i64, 0, 8, 0, 0],
        );
        let pid = raw(libc::SYS_getpid, [0; 6]);
        let tid = raw(libc::SYS_gettid, [0; 6]);
        raw(libc::SYS_tgkill, [pid, tid, sig.into(), 0, 0, 0]);
        return;
    }
    // Our handler runs with every other signal blocked (arm.rs): the
    // program's runs with the mask the host would give it (the
    // interrupted one and its action's), SIGSYS left out (a trap while it
    // is blocked kills).
    // SAFETY: the host kernel passes a valid ucontext; sigset_t's first 8
    // bytes are the kernel's 64 signals.
    let old = unsafe {
        std::ptr::addr_of!((*ctx.cast::<libc::ucontext_t>()).uc_sigmask)
            .cast::<u64>()
            .read_unaligned()
    };
    let mask = (old | a.mask) & !super::gate::SIGSYS_BIT;
    raw(
        libc::SYS_rt_sigprocmask,
        [
            libc::SIG_SETMASK.into(),
            &mask as *const u64 as i64,
            0,
            8,
            0,
            0,
        ],
    );
    if a.flags & libc::SA_SIGINFO as u64 != 0 {
        // SAFETY: the program installed this as an sa_sigaction handler.
        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(a.handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the program installed this as an sa_handler.
        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(a.handler) };
        f(sig);
    }
}

/// Raw host call from our code through the exempt range.
pub use super::gate::exempt as raw;
