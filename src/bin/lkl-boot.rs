//! Boot demo: boots the kernel inside this process, shows what it is, makes
//! a few calls and halts. `lkl-boot --console` shows the kernel's console.

use std::time::Instant;

use lkl::host::Console;
use lkl::syscall::{self, abi};
use lkl::{BootOptions, Kernel};

fn main() {
    let console = std::env::args().any(|a| a == "--console");
    let opts = BootOptions {
        memory: 32 << 20,
        console: if console {
            Console::Stderr
        } else {
            Console::Silent
        },
        ..Default::default()
    };
    let t0 = Instant::now();
    let kernel = match Kernel::boot(opts) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("lkl-boot: {e}");
            std::process::exit(1);
        }
    };
    let booted = t0.elapsed();
    let u = syscall::uname().unwrap_or_default();
    println!(
        "{} {} {} (booted in {:.2} ms, mem=32M)",
        abi::cstr_field(&u.sysname),
        abi::cstr_field(&u.release),
        abi::cstr_field(&u.machine),
        booted.as_secs_f64() * 1e3
    );
    println!("getpid() = {:?}", syscall::getpid());
    match syscall::if_set_up("lo", true) {
        Ok(flags) => println!("lo is up (flags {flags:#x})"),
        Err(e) => println!("lo: {e}"),
    }
    if let Ok(()) = syscall::mkdir("/proc", 0o555).or_else(|e| {
        if e == lkl::Errno::EEXIST {
            Ok(())
        } else {
            Err(e)
        }
    }) {
        if syscall::mount("proc", "/proc", "proc", 0, None).is_ok() {
            if let Ok(fd) = syscall::open("/proc/version", abi::O_RDONLY, 0) {
                let mut buf = [0u8; 256];
                let n = syscall::read(fd, &mut buf).unwrap_or(0);
                print!("/proc/version: {}", String::from_utf8_lossy(&buf[..n]));
                let _ = syscall::close(fd);
            }
        }
    }
    match kernel.halt() {
        Ok(()) => println!("halted"),
        Err(e) => {
            eprintln!("lkl-boot: halt: {e}");
            std::process::exit(1);
        }
    }
}
