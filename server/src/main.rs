//! `lkl-server --dir DIR --watch PID`: the kernel server of the
//! process-tree mode. `bin/lkl-hijack.sh` runs it with the hijack library
//! preloaded: the library's constructor boots the tree's kernel from the
//! config before `main`, as for any hijacked program, and `main` hands
//! over to the library's `lkl_hijack_serve`, which serves the processes of
//! the tree until the last one has ended. Then `main` returns and the
//! library's exit path halts the kernel cleanly (sockets drained, disks
//! unmounted and synced). The serving code lives in the library because
//! the kernel does: one copy per process.

use std::ffi::{c_char, c_int, CString};

type Serve = unsafe extern "C" fn(*const c_char, c_int) -> c_int;

fn usage() -> ! {
    eprintln!("usage: lkl-server --dir DIR --watch PID   (run by bin/lkl-hijack.sh)");
    eprintln!("       bin/lkl-hijack.sh --attach PID lkl-server --stats   (a tree's counts)");
    std::process::exit(2)
}

/// The kernel is up (the constructor ran): stdin, which `debug` 0x200
/// may have read, is the program's from now on, not ours.
fn release_stdin() {
    // SAFETY: opens /dev/null and puts it on descriptor 0 (ours).
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
    }
}

/// The library's function `name`, if it is loaded.
fn library_fn(name: &std::ffi::CStr) -> Option<*mut libc::c_void> {
    // SAFETY: looks a symbol up by a NUL-terminated name.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!sym.is_null()).then_some(sym)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--stats") {
        let Some(sym) = library_fn(c"lkl_hijack_stats") else {
            eprintln!("lkl-server: the hijack library is not loaded (bin/lkl-hijack.sh --attach PID lkl-server --stats)");
            std::process::exit(1);
        };
        // SAFETY: the library exports lkl_hijack_stats with this signature.
        let stats =
            unsafe { std::mem::transmute::<*mut libc::c_void, extern "C" fn() -> c_int>(sym) };
        std::process::exit(stats());
    }
    release_stdin();
    let mut dir = None;
    let mut watch: c_int = 0;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--dir") => dir = args.next(),
            Some("--watch") => {
                watch = args
                    .next()
                    .and_then(|v| v.to_str()?.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    let Some(dir) = dir else { usage() };
    let Ok(dir) = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str())) else {
        usage()
    };
    // SAFETY: looks a symbol up by a NUL-terminated name.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"lkl_hijack_serve".as_ptr()) };
    if sym.is_null() {
        eprintln!(
            "lkl-server: the hijack library is not loaded (run me through bin/lkl-hijack.sh)"
        );
        std::process::exit(1);
    }
    // SAFETY: the library exports lkl_hijack_serve with this signature.
    let serve: Serve = unsafe { std::mem::transmute::<*mut libc::c_void, Serve>(sym) };
    // SAFETY: a NUL-terminated path that lives across the call.
    let rc = unsafe { serve(dir.as_ptr(), watch) };
    std::process::exit(rc)
}
