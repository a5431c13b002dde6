//! `execl`, `execlp` and `execle`: glibc's build an argument vector and
//! call its internal `execve`, which no hook sees, so the new image would
//! lose its kernel descriptors (and, under `env -i`, the tree). These take
//! the variadic list themselves and go through the hooks of `execve` and
//! `execvpe`.
//!
//! Rust cannot define a C variadic function, but on x86-64 (System V) a
//! variadic callee receives its arguments as any other: the first six
//! integer ones in `rdi, rsi, rdx, rcx, r8, r9`, the rest on the stack
//! above the return address. A naked entry stores the five registers
//! after `path` next to each other and hands their address, the address
//! of the stack arguments and which call it is to [`from_list`].

use std::ffi::{c_char, c_int};

/// Which call the list came from.
const EXECL: c_int = 0;
const EXECLP: c_int = 1;
const EXECLE: c_int = 2;

/// Argument vectors up to this long are built on the stack (no allocation:
/// these calls are async-signal-safe); longer ones are allocated.
const ON_STACK: usize = 256;

/// Argument `i` after `path`: the five in registers, then the stack's.
///
/// # Safety
/// `regs` holds five saved registers, `stack` the caller's stack arguments,
/// and the list is NULL-terminated (as the C contract requires).
unsafe fn arg(regs: *const *const c_char, stack: *const *const c_char, i: usize) -> *const c_char {
    // SAFETY: the function's contract.
    unsafe {
        if i < 5 {
            *regs.add(i)
        } else {
            *stack.add(i - 5)
        }
    }
}

/// The body of the three entries.
///
/// # Safety
/// As [`arg`], called by the entries below only.
unsafe extern "C" fn from_list(
    path: *const c_char,
    regs: *const *const c_char,
    stack: *const *const c_char,
    kind: c_int,
) -> c_int {
    // SAFETY: a NULL-terminated list by the caller's contract.
    let count = (0..)
        .take_while(|&i| !unsafe { arg(regs, stack, i) }.is_null())
        .count();
    let envp = if kind == EXECLE {
        // SAFETY: execle's environment follows the list's NULL.
        unsafe { arg(regs, stack, count + 1) as *const *const c_char }
    } else {
        // SAFETY: reads the program's environment pointer.
        unsafe { super::environ }
    };
    let mut small = [std::ptr::null::<c_char>(); ON_STACK];
    let mut large = Vec::new();
    let argv: &mut [*const c_char] = if count < ON_STACK {
        &mut small[..count + 1]
    } else {
        large.resize(count + 1, std::ptr::null());
        &mut large
    };
    for (i, slot) in argv.iter_mut().take(count).enumerate() {
        // SAFETY: i < count, inside the list.
        *slot = unsafe { arg(regs, stack, i) };
    }
    // The last slot stays NULL.
    // SAFETY: the program's path, a NULL-terminated vector and environment.
    unsafe {
        if kind == EXECLP {
            super::execvpe(path, argv.as_ptr(), envp)
        } else {
            super::execve(path, argv.as_ptr(), envp)
        }
    }
}

/// The entries' common part: `eax` says which call (the variadic
/// convention's vector-register count in `al` is of no use here).
#[unsafe(naked)]
unsafe extern "C" fn list_entry() {
    std::arch::naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "push r9",
        "push r8",
        "push rcx",
        "push rdx",
        "push rsi",
        // 16-byte alignment for the call.
        "sub rsp, 8",
        "lea rsi, [rbp - 40]",
        "lea rdx, [rbp + 16]",
        "mov ecx, eax",
        "call {body}",
        "leave",
        "ret",
        body = sym from_list,
    )
}

/// # Safety
/// libc's contract for `execl`.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn execl(_path: *const c_char, _arg0: *const c_char) -> c_int {
    std::arch::naked_asm!("mov eax, {kind}", "jmp {entry}", kind = const EXECL, entry = sym list_entry)
}

/// # Safety
/// libc's contract for `execlp`.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn execlp(_file: *const c_char, _arg0: *const c_char) -> c_int {
    std::arch::naked_asm!("mov eax, {kind}", "jmp {entry}", kind = const EXECLP, entry = sym list_entry)
}

/// # Safety
/// libc's contract for `execle`.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn execle(_path: *const c_char, _arg0: *const c_char) -> c_int {
    std::arch::naked_asm!("mov eax, {kind}", "jmp {entry}", kind = const EXECLE, entry = sym list_entry)
}
