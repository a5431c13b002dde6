//! Boot demo: boots the kernel inside this process, shows what it is, makes
//! a few calls and halts.
//!
//! Usage: lkl-boot [--console] [--mem SIZE] [--cmdline "PARAMS"] [--hold SECS]
//!   --console   show the kernel's console on stderr
//!   --mem SIZE  kernel RAM, e.g. 32M (default) or 4096K
//!   --cmdline   extra kernel command-line parameters
//!   --hold SECS keep the kernel up that long before halting (to inspect
//!               the process: threads, memory)
//!   --cat PATH  print a file of the kernel's (e.g. /proc/meminfo); repeatable

use std::io::Write;
use std::time::Instant;

use lkl::host::Console;
use lkl::syscall::{self, abi};
use lkl::{BootOptions, Errno, Kernel};

fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

fn usage(msg: &str) -> ! {
    eprintln!("lkl-boot: {msg}\nusage: lkl-boot [--console] [--mem SIZE] [--cmdline \"PARAMS\"] [--hold SECS] [--cat PATH]...");
    std::process::exit(2);
}

fn main() {
    let mut opts = BootOptions {
        memory: 32 << 20,
        ..Default::default()
    };
    let mut hold = 0u64;
    let mut cat: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--console" => opts.console = Console::Stderr,
            "--mem" => {
                let v = args.next().unwrap_or_else(|| usage("--mem needs a size"));
                opts.memory = parse_size(&v).unwrap_or_else(|| usage(&format!("bad size {v:?}")));
            }
            "--cmdline" => {
                opts.cmdline = args
                    .next()
                    .unwrap_or_else(|| usage("--cmdline needs a value"))
            }
            "--cat" => cat.push(args.next().unwrap_or_else(|| usage("--cat needs a path"))),
            "--hold" => {
                let v = args.next().unwrap_or_else(|| usage("--hold needs seconds"));
                hold = v
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("bad seconds {v:?}")));
            }
            "-h" | "--help" => usage("boots Linux inside this process"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let mem_mib = opts.memory as f64 / f64::from(1 << 20);

    let t0 = Instant::now();
    let kernel = Kernel::boot(opts).unwrap_or_else(|e| {
        eprintln!("lkl-boot: {e}");
        std::process::exit(1);
    });
    let booted = t0.elapsed();

    // Output errors (a closed pipe) are not worth a panic here.
    let mut out = std::io::stdout().lock();
    let u = syscall::uname().unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {} {} (booted in {:.2} ms, mem={mem_mib}M)",
        abi::cstr_field(&u.sysname),
        abi::cstr_field(&u.release),
        abi::cstr_field(&u.machine),
        booted.as_secs_f64() * 1e3
    );
    let _ = writeln!(out, "getpid() = {:?}", syscall::getpid());
    match syscall::if_set_up("lo", true) {
        Ok(flags) => {
            let _ = writeln!(out, "lo is up (flags {flags:#x})");
        }
        Err(e) => {
            let _ = writeln!(out, "lo: {e}");
        }
    }
    let proc_ok =
        syscall::mkdir("/proc", 0o555)
            .or_else(|e| if e == Errno::EEXIST { Ok(()) } else { Err(e) });
    if proc_ok.is_ok() && syscall::mount("proc", "/proc", "proc", 0, None).is_ok() {
        if let Ok(fd) = syscall::open("/proc/version", abi::O_RDONLY, 0) {
            let mut buf = [0u8; 256];
            let n = syscall::read(fd, &mut buf).unwrap_or(0);
            let _ = write!(out, "/proc/version: {}", String::from_utf8_lossy(&buf[..n]));
            let _ = syscall::close(fd);
        }
    }
    for path in &cat {
        match syscall::open(path, abi::O_RDONLY, 0) {
            Ok(fd) => {
                let mut buf = vec![0u8; 64 << 10];
                let mut text = Vec::new();
                while let Ok(n @ 1..) = syscall::read(fd, &mut buf) {
                    text.extend_from_slice(&buf[..n]);
                }
                let _ = syscall::close(fd);
                let _ = writeln!(
                    out,
                    "--- {path}\n{}",
                    String::from_utf8_lossy(&text).trim_end()
                );
            }
            Err(e) => {
                let _ = writeln!(out, "--- {path}: {e}");
            }
        }
    }
    let _ = out.flush();
    if hold > 0 {
        std::thread::sleep(std::time::Duration::from_secs(hold));
    }
    match kernel.halt() {
        Ok(()) => {
            let _ = writeln!(out, "halted");
        }
        Err(e) => {
            eprintln!("lkl-boot: halt: {e}");
            std::process::exit(1);
        }
    }
}
