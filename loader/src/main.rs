//! `lkl-loader PATH ARGV0 [ARGS...]`: runs the static x86_64 program at
//! PATH (argv[0] = ARGV0) in this process, where the hijack library is
//! preloaded with the system-call tier armed (`bin/lkl-hijack.sh` runs it
//! so for a static program): the kernel is up and every system call of
//! the program is routed through the library's hooks. docs/every-syscall.md
//! ("The loader") tells the story.
//!
//! It maps the ELF's `PT_LOAD` segments (at their addresses for `ET_EXEC`,
//! at a base of its choosing for a static PIE), builds the initial stack
//! as the host's `execve` would (argc, argv, envp, auxv with `AT_PHDR`,
//! `AT_ENTRY`, `AT_RANDOM`, `AT_EXECFN` the program's path, the vDSO),
//! tells the library (`lkl_hijack_loader_begin`: `%fs` swapped for the
//! program's own TLS, `brk`, `/proc/self/exe`), and jumps to the entry
//! point. A dynamic program is refused (`bin/lkl-hijack.sh` preloads it).

use std::ffi::{c_char, c_int, CString};
use std::os::unix::ffi::OsStrExt;

const PAGE: usize = 4096;
const STACK: usize = 8 << 20;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;

fn fail(msg: &str) -> ! {
    eprintln!("lkl-loader: {msg}");
    std::process::exit(127)
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

/// One program header.
struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn round_down(v: usize) -> usize {
    v & !(PAGE - 1)
}
fn round_up(v: usize) -> usize {
    (v + PAGE - 1) & !(PAGE - 1)
}

/// mmap, or the loader stops.
fn map(addr: usize, len: usize, prot: c_int, flags: c_int, fd: c_int, off: usize) -> usize {
    // SAFETY: a new mapping where nothing of ours lives (fixed ones are
    // MAP_FIXED_NOREPLACE, or inside our own reservation).
    let p = unsafe { libc::mmap(addr as *mut _, len, prot, flags, fd, off as libc::off_t) };
    if p == libc::MAP_FAILED {
        fail(&format!(
            "mmap {addr:#x}+{len:#x}: {}",
            std::io::Error::last_os_error()
        ));
    }
    p as usize
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() < 3 {
        fail("usage: lkl-loader PATH ARGV0 [ARGS...] (bin/lkl-hijack.sh runs it)");
    }
    let path = &args[1];
    let data =
        std::fs::read(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.to_string_lossy())));
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        fail("not a 64-bit little-endian ELF file");
    }
    let e_type = u16_at(&data, 16);
    if u16_at(&data, 18) != 62 || !(e_type == 2 || e_type == 3) {
        fail("not an x86_64 executable");
    }
    let entry = u64_at(&data, 24) as usize;
    let phoff = u64_at(&data, 32) as usize;
    let phentsize = usize::from(u16_at(&data, 54));
    let phnum = usize::from(u16_at(&data, 56));
    if phentsize < 56 || phoff + phnum * phentsize > data.len() {
        fail("bad program headers");
    }
    let phdrs: Vec<Phdr> = (0..phnum)
        .map(|i| {
            let o = phoff + i * phentsize;
            Phdr {
                kind: u32_at(&data, o),
                flags: u32_at(&data, o + 4),
                offset: u64_at(&data, o + 8),
                vaddr: u64_at(&data, o + 16),
                filesz: u64_at(&data, o + 32),
                memsz: u64_at(&data, o + 40),
            }
        })
        .collect();
    if phdrs.iter().any(|p| p.kind == PT_INTERP) {
        fail(
            "a dynamically linked program: bin/lkl-hijack.sh preloads the library into it instead",
        );
    }
    let loads: Vec<&Phdr> = phdrs.iter().filter(|p| p.kind == PT_LOAD).collect();
    if loads.is_empty() {
        fail("no PT_LOAD segment");
    }
    let lo = round_down(loads.iter().map(|p| p.vaddr as usize).min().unwrap_or(0));
    let hi = round_up(
        loads
            .iter()
            .map(|p| (p.vaddr + p.memsz) as usize)
            .max()
            .unwrap_or(0),
    );
    // A static PIE goes where the host puts a reservation of its size.
    let base = if e_type == 3 {
        map(
            0,
            hi - lo,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) - lo
    } else {
        0
    };
    let file = std::fs::File::open(path).unwrap_or_else(|e| fail(&e.to_string()));
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let fixed = if e_type == 3 {
        libc::MAP_FIXED
    } else {
        libc::MAP_FIXED_NOREPLACE
    };
    for p in &loads {
        let start = round_down(base + p.vaddr as usize);
        let file_end = base + (p.vaddr + p.filesz) as usize;
        let mem_end = round_up(base + (p.vaddr + p.memsz) as usize);
        let off = round_down(p.offset as usize);
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        if p.filesz > 0 {
            map(
                start,
                round_up(file_end) - start,
                rw,
                libc::MAP_PRIVATE | fixed,
                fd,
                off,
            );
            // The bss's head shares the file's last page: zeroed.
            let tail = round_up(file_end) - file_end;
            if p.memsz > p.filesz && tail > 0 {
                // SAFETY: the writable page just mapped.
                unsafe { std::ptr::write_bytes(file_end as *mut u8, 0, tail) };
            }
        }
        let anon_from = if p.filesz > 0 {
            round_up(file_end)
        } else {
            start
        };
        if mem_end > anon_from {
            map(
                anon_from,
                mem_end - anon_from,
                rw,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | fixed,
                -1,
                0,
            );
        }
        let mut prot = 0;
        if p.flags & 4 != 0 {
            prot |= libc::PROT_READ;
        }
        if p.flags & 2 != 0 {
            prot |= libc::PROT_WRITE;
        }
        if p.flags & 1 != 0 {
            prot |= libc::PROT_EXEC;
        }
        // SAFETY: our own new mapping.
        unsafe { libc::mprotect(start as *mut _, mem_end - start, prot) };
    }
    drop(file);
    let at_phdr = match phdrs.iter().find(|p| p.kind == PT_PHDR) {
        Some(p) => base + p.vaddr as usize,
        None => loads
            .iter()
            .find(|p| p.offset as usize <= phoff && phoff < (p.offset + p.filesz) as usize)
            .map(|p| base + p.vaddr as usize + phoff - p.offset as usize)
            .unwrap_or_else(|| fail("program headers not in a loaded segment")),
    };

    // The initial stack, as execve builds it.
    let stack_lo = map(
        0,
        STACK,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
        -1,
        0,
    );
    let mut top = stack_lo + STACK;
    let mut push_bytes = |b: &[u8]| -> usize {
        top -= b.len() + 1;
        // SAFETY: inside the new stack, above what is built below.
        unsafe {
            std::ptr::copy_nonoverlapping(b.as_ptr(), top as *mut u8, b.len());
            *((top + b.len()) as *mut u8) = 0;
        }
        top
    };
    let execfn = push_bytes(path.as_bytes());
    let platform = push_bytes(b"x86_64");
    let mut argv: Vec<usize> = Vec::new();
    for a in &args[2..] {
        argv.push(push_bytes(a.as_bytes()));
    }
    let mut envp: Vec<usize> = Vec::new();
    for (k, v) in std::env::vars_os() {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envp.push(push_bytes(&kv));
    }
    let mut random = [0u8; 16];
    // SAFETY: 16 bytes of our buffer.
    unsafe { libc::getrandom(random.as_mut_ptr().cast(), 16, 0) };
    let at_random = push_bytes(&random);
    // SAFETY: getauxval has no preconditions.
    let aux = |t| unsafe { libc::getauxval(t) } as usize;
    let auxv: [(usize, usize); 20] = [
        (libc::AT_PHDR as usize, at_phdr),
        (libc::AT_PHENT as usize, phentsize),
        (libc::AT_PHNUM as usize, phnum),
        (libc::AT_PAGESZ as usize, PAGE),
        (libc::AT_BASE as usize, 0),
        (libc::AT_FLAGS as usize, 0),
        (libc::AT_ENTRY as usize, base + entry),
        (libc::AT_UID as usize, aux(libc::AT_UID)),
        (libc::AT_EUID as usize, aux(libc::AT_EUID)),
        (libc::AT_GID as usize, aux(libc::AT_GID)),
        (libc::AT_EGID as usize, aux(libc::AT_EGID)),
        (libc::AT_SECURE as usize, 0),
        (libc::AT_RANDOM as usize, at_random),
        (libc::AT_HWCAP as usize, aux(libc::AT_HWCAP)),
        (libc::AT_HWCAP2 as usize, aux(libc::AT_HWCAP2)),
        (libc::AT_CLKTCK as usize, aux(libc::AT_CLKTCK)),
        (libc::AT_SYSINFO_EHDR as usize, aux(libc::AT_SYSINFO_EHDR)),
        (libc::AT_EXECFN as usize, execfn),
        (libc::AT_PLATFORM as usize, platform),
        (51 /* AT_MINSIGSTKSZ */, aux(51)),
    ];
    let words = 1 + argv.len() + 1 + envp.len() + 1 + 2 * auxv.len() + 2;
    let sp = (top - words * 8) & !15;
    let mut v: Vec<usize> = Vec::with_capacity(words);
    v.push(argv.len());
    v.extend(&argv);
    v.push(0);
    v.extend(&envp);
    v.push(0);
    for (t, val) in auxv {
        v.push(t);
        v.push(val);
    }
    v.push(0);
    v.push(0);
    // SAFETY: `words` words below the strings, inside the new stack.
    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), sp as *mut usize, v.len()) };

    // The library: %fs, brk and /proc/self/exe for the program.
    // SAFETY: a symbol name; the function, if there, has this signature.
    let begin = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"lkl_hijack_loader_begin".as_ptr()) };
    if begin.is_null() {
        fail("the hijack library is not loaded: run the program with bin/lkl-hijack.sh");
    }
    // SAFETY: the library's `lkl_hijack_loader_begin(const char *) -> int`.
    let begin: unsafe extern "C" fn(*const c_char) -> c_int = unsafe { std::mem::transmute(begin) };
    // /proc/self/exe names the file itself, symlinks resolved, as the
    // host's does; AT_EXECFN and argv[0] keep what was asked for.
    let real = std::fs::canonicalize(path).unwrap_or_else(|e| fail(&e.to_string()));
    let cpath = CString::new(real.as_os_str().as_bytes()).unwrap_or_else(|_| fail("bad path"));
    // SAFETY: a NUL-terminated path; this thread runs the program.
    if unsafe { begin(cpath.as_ptr()) } != 0 {
        std::process::exit(127);
    }
    let entry = base + entry;
    // SAFETY: the program's entry point, with the stack the host's execve
    // would give it (rdx: no finaliser for a static program).
    unsafe {
        std::arch::asm!(
            "mov rsp, {sp}",
            "xor edx, edx",
            "xor ebp, ebp",
            "jmp {entry}",
            sp = in(reg) sp,
            entry = in(reg) entry,
            options(noreturn)
        );
    }
}
