//! Boot at load time, halt at exit. The constructor reads the config
//! (LKL_HIJACK_CONFIG_FILE, ./lkl-hijack.json or the LKL_HIJACK_*
//! variables), attaches the interfaces, boots and applies the config. A bad
//! config stops the program before `main` with the error on stderr and
//! status 1: nothing silently falls back to the host's network. The
//! config's disks are attached before boot and mounted after it (disks.rs).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use lkl::config::Config;
use lkl::devices::AttachedDevice;
use lkl::host::Console;
use lkl::virtio::net::backends::open_backend;
use lkl::virtio::Net;
use lkl::{BootOptions, Kernel};

/// True while calls on kernel descriptors can be served.
static ACTIVE: AtomicBool = AtomicBool::new(false);

struct Running {
    kernel: Kernel,
    _devices: Vec<AttachedDevice>,
    _disks: crate::disks::Attached,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// The settings the hooks consult after boot.
struct Settings {
    nameservers: Vec<IpAddr>,
    dump: Vec<String>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The config's `nameserver` list (empty: glibc resolves).
pub fn nameservers() -> &'static [IpAddr] {
    SETTINGS.get().map_or(&[], |s| &s.nameservers)
}

/// The thread running the exit path (0: the program is not exiting).
static EXITING: AtomicI32 = AtomicI32::new(0);

/// Called where a thread is about to use the kernel (or has just come back
/// from it): while another thread runs the exit path, this thread stops
/// here for good, as it would stay blocked in its call on the host until
/// exit_group ends it. It must not see the kernel's descriptors closed,
/// its disks unmounted or the kernel halted (a blocked call's ESHUTDOWN,
/// a path that fell back to the host): the program would print errors, or
/// open a file that keeps a disk from being unmounted. Holds no lock of
/// ours; `pause` is the host's, so signals are still handled.
#[inline]
pub fn park_if_exiting() {
    let t = EXITING.load(Ordering::Acquire);
    if t != 0 {
        park_unless(t);
    }
}

#[cold]
fn park_unless(exiting: i32) {
    // SAFETY: gettid has no arguments.
    if unsafe { libc::gettid() } == exiting {
        return;
    }
    loop {
        // SAFETY: waits for a signal; the process ends around us.
        unsafe { libc::pause() };
    }
}

/// True in a process forked from the one running the kernel (the library's
/// one flag, set by the atfork handler the kernel registers at boot).
pub fn forked() -> bool {
    lkl::sys::forked()
}

/// A kernel call's error as the program should see it: in a forked child
/// the inherited kernel descriptors are gone (EBADF), not ESHUTDOWN.
pub fn after_fork(e: lkl::Errno) -> lkl::Errno {
    if e == lkl::Errno::ESHUTDOWN && forked() {
        lkl::Errno::EBADF
    } else {
        e
    }
}

/// Says once why a forked child gets no kernel sockets.
pub fn forked_socket_error() {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::AcqRel) {
        diag("socket(): this process is a fork of the one that runs the kernel, which stayed there: no kernel sockets here (exec a program to boot its own)");
    }
}

/// A one-line diagnostic on stderr.
pub fn diag(msg: &str) {
    eprintln!("lkl-hijack: {msg}");
}

#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

fn fail(msg: &str) -> ! {
    eprintln!("lkl-hijack: {msg}");
    // SAFETY: ends the process before main, without running its atexit
    // handlers (nothing of the program has run yet).
    unsafe { libc::_exit(1) }
}

fn start() -> Result<Running, String> {
    let config = Config::from_sources().map_err(|e| e.to_string())?;
    let mut devices = Vec::new();
    let mut names = Vec::new();
    for (i, iface) in config.interfaces.iter().enumerate() {
        let features = u64::from(iface.offload.bits());
        let backend = match open_backend(&iface.backend, features != 0) {
            Ok(b) => b,
            // A program exec'd by a hijacked parent: the parent still holds
            // the tap. Run on with the interfaces we could attach.
            Err(e) if e.os_error().and_then(|o| o.raw_os_error()) == Some(libc::EBUSY) => {
                diag(&format!(
                    "interfaces[{i}]: {e}: held by another process (a hijacked parent that ran this program?); running without it"
                ));
                continue;
            }
            Err(e) => return Err(format!("interfaces[{i}]: {e}")),
        };
        let mac = iface
            .mac
            .map(|m| m.0)
            .unwrap_or([0x02, 0x00, 0x00, 0x00, 0x00, i as u8 + 1]);
        let net =
            Net::new(backend, features, Some(mac)).map_err(|e| format!("interfaces[{i}]: {e}"))?;
        devices.push(
            lkl::devices::attach(Box::new(net)).map_err(|e| format!("interfaces[{i}]: {e}"))?,
        );
        // The kernel names the devices in attach order.
        names.push((i, format!("eth{}", names.len())));
    }
    let disks = crate::disks::attach(&config)?;
    let opts = BootOptions {
        memory: 64 << 20,
        cmdline: config.boot_cmdline.clone(),
        console: if config.debug.0 != 0 {
            Console::Stderr
        } else {
            Console::Silent
        },
        ..Default::default()
    };
    let kernel = Kernel::boot(opts).map_err(|e| e.to_string())?;
    // Every kernel descriptor is shown under a host placeholder, so the
    // host's RLIMIT_NOFILE is the one that counts: lift the kernel's own
    // (1024 by default) to its ceiling, fs.nr_open.
    let _ = lkl::syscall::setrlimit(libc::RLIMIT_NOFILE, 1 << 20, 1 << 20);
    crate::disks::mount(&config, &disks.disks)?;
    lkl::netcfg::apply(&config, &names).map_err(|e| e.to_string())?;
    let _ = SETTINGS.set(Settings {
        nameservers: config.nameservers.clone(),
        dump: config.dump.clone(),
    });
    Ok(Running {
        kernel,
        _devices: devices,
        _disks: disks,
    })
}

/// The descriptors open in this process.
fn open_fds() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every descriptor the library opened while starting (taps, eventfds,
/// sockets) is close-on-exec, so an exec'd program can attach the tap
/// again and boot its own kernel. The backends already ask for it; this
/// makes sure of it.
fn close_on_exec_since(before: &[i32]) {
    for fd in open_fds() {
        if !before.contains(&fd) {
            // SAFETY: sets a flag on a descriptor of this process.
            unsafe {
                let f = libc::fcntl(fd, libc::F_GETFD);
                if f >= 0 && f & libc::FD_CLOEXEC == 0 {
                    libc::fcntl(fd, libc::F_SETFD, f | libc::FD_CLOEXEC);
                }
            }
        }
    }
}

extern "C" fn hijack_init() {
    let before = open_fds();
    let started = start();
    close_on_exec_since(&before);
    match started {
        Ok(running) => {
            // Registered by the boot already; says so here too.
            lkl::sys::watch_forks();
            *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(running);
            ACTIVE.store(true, Ordering::Release);
        }
        Err(e) => fail(&e),
    }
}

/// Prints each `dump` path's content (a kernel file) to stderr.
fn dump(paths: &[String]) {
    use std::io::Write;
    for path in paths {
        let text = lkl::syscall::open(
            path,
            lkl::syscall::abi::O_RDONLY | lkl::syscall::abi::O_CLOEXEC,
            0,
        )
        .and_then(|fd| {
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            let r = loop {
                match lkl::syscall::read(fd, &mut buf) {
                    Ok(0) => break Ok(out),
                    Ok(n) if out.len() < (1 << 20) => out.extend_from_slice(&buf[..n]),
                    Ok(_) => break Ok(out),
                    Err(e) => break Err(e),
                }
            };
            let _ = lkl::syscall::close(fd);
            r
        });
        let mut err = std::io::stderr().lock();
        match text {
            Ok(t) => {
                let _ = writeln!(err, "lkl-hijack: dump {path}:");
                let _ = err.write_all(&t);
                if !t.ends_with(b"\n") && !t.is_empty() {
                    let _ = writeln!(err);
                }
            }
            Err(e) => {
                let _ = writeln!(err, "lkl-hijack: dump {path}: {e}");
            }
        }
    }
}

extern "C" fn hijack_fini() {
    if forked() {
        // The kernel is the parent's; there is nothing here to halt.
        ACTIVE.store(false, Ordering::Release);
        return;
    }
    // From here on other threads stop where they meet the kernel.
    // SAFETY: gettid has no arguments.
    EXITING.store(unsafe { libc::gettid() }, Ordering::Release);
    if let Some(s) = SETTINGS.get() {
        if active() {
            dump(&s.dump);
        }
    }
    ACTIVE.store(false, Ordering::Release);
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(r) = running {
        crate::disks::finish(r.kernel);
    }
}

// The loader runs these around the program's life: the constructor before
// main (and before the program's own constructors of later libraries), the
// destructor at exit.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = hijack_init;

#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = hijack_fini;
