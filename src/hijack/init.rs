//! Boot at load time, halt at exit. The constructor reads the config
//! (LKL_HIJACK_CONFIG_FILE, ./lkl-hijack.json or the LKL_HIJACK_*
//! variables), attaches the interfaces, boots and applies the config. A bad
//! config stops the program before `main` with the error on stderr and
//! status 1: nothing silently falls back to the host's network. The
//! config's disks are attached before boot and mounted after it (fs/disks.rs).
//! Also here: `vfork`, served by `fork`.

use std::sync::{Mutex, OnceLock};

use lkl::config::{Config, SingleCpu};
use lkl::devices::AttachedDevice;
use lkl::host::Console;
use lkl::virtio::net::backends::open_backend;
use lkl::virtio::Net;
use lkl::{BootOptions, Kernel};

use crate::hijack::fd::control;
use crate::hijack::fdtable;
use crate::hijack::fs::disks;
use crate::hijack::lifecycle::{self, active, diag, forked, set_active};
use crate::hijack::net::resolve;
use crate::hijack::process;
use crate::hijack::signals;

struct Running {
    kernel: Kernel,
    _devices: Vec<AttachedDevice>,
    _disks: disks::Attached,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// The settings the exit path consults.
struct Settings {
    dump: Vec<String>,
    /// `debug` bit 0x100: pause at exit (LKL's meaning).
    pause_at_exit: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Stops the program before `main`: its config cannot be served (a
/// config's errors come all at once, one per line).
fn refuse_to_start(msg: &str) -> ! {
    for line in msg.lines() {
        eprintln!("lkl-hijack: {line}");
    }
    // SAFETY: ends the process before main, without running its atexit
    // handlers (nothing of the program has run yet).
    unsafe { libc::_exit(1) }
}

/// `LKL_HIJACK_CHECK_CONFIG` (`bin/lkl-hijack.sh --check-config`): the
/// config is checked and its effective settings printed on stdout; the
/// program does not run (status 0, or 1 with the errors on stderr).
fn check_config() -> ! {
    use std::io::Write;
    let config = Config::from_sources().unwrap_or_else(|e| refuse_to_start(&e.to_string()));
    let mut out = std::io::stdout().lock();
    for line in config.settings() {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
    // SAFETY: ends the process before main, as refuse_to_start() does.
    unsafe { libc::_exit(0) }
}

/// The calling thread's CPU affinity.
fn affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set; the host's
    // sched_getaffinity fills at most size_of::<cpu_set_t>() bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let r = libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set as *mut libc::cpu_set_t,
        );
        (r > 0).then_some(set)
    }
}

/// Sets the calling thread's CPU affinity; threads it creates from now on
/// inherit it.
fn set_affinity(set: &libc::cpu_set_t) -> Result<(), String> {
    // SAFETY: the host's sched_setaffinity reads size_of::<cpu_set_t>()
    // bytes of a valid set.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            set as *const libc::cpu_set_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "singlecpu: sched_setaffinity: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// `singlecpu` as LKL does it: this thread is pinned to the first CPU it
/// may run on while the threads to pin are created (they inherit the
/// affinity; so do the kernel's later threads, created by pinned kernel
/// threads), then gets its own affinity back (after boot).
fn pin_to_first_cpu(original: &libc::cpu_set_t) -> Result<(), String> {
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET/CPU_SET read and write a valid set at an index
    // below its size.
    let first = (0..max).find(|&c| unsafe { libc::CPU_ISSET(c, original) });
    let Some(cpu) = first else {
        return Err("singlecpu: this thread may run on no CPU".into());
    };
    // SAFETY: as above, on a zeroed (valid, empty) set.
    let one = unsafe {
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        one
    };
    set_affinity(&one)?;
    diag_debug(&format!("singlecpu: pinned to CPU {cpu}"));
    Ok(())
}

/// A line on stderr when `debug` is set (LKL's lkl_printf).
fn diag_debug(msg: &str) {
    if DEBUG.load(std::sync::atomic::Ordering::Relaxed) {
        diag(msg);
    }
}

static DEBUG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `debug` bit 0x200: waits for a line (or end of file) on stdin before
/// the kernel boots; the prompt goes to stderr, not the program's stdout.
fn wait_for_enter() {
    diag("debug 0x200: press Enter to boot the kernel");
    let mut byte = 0u8;
    loop {
        // SAFETY: the host's read into one valid byte (not our `read`
        // hook: the kernel is not up).
        let r = unsafe { libc::syscall(libc::SYS_read, 0, &mut byte as *mut u8, 1usize) };
        if r == 1 && byte != b'\n' {
            continue;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break;
    }
}

fn start() -> Result<Running, String> {
    let config = Config::from_sources().map_err(|e| e.to_string())?;
    for w in &config.warnings {
        diag(&format!("warning: {w}"));
    }
    DEBUG.store(config.debug.console(), std::sync::atomic::Ordering::Relaxed);
    if config.debug.console() {
        // (The warnings, part of the settings, are printed above.)
        for line in config.settings() {
            if !line.starts_with("warning: ") {
                diag(&line);
            }
        }
    }
    if config.debug.wait_before_boot() {
        wait_for_enter();
    }
    let original = match config.single_cpu {
        SingleCpu::Off => None,
        _ => Some(affinity().ok_or_else(|| {
            format!(
                "singlecpu: sched_getaffinity: {}",
                std::io::Error::last_os_error()
            )
        })?),
    };
    if let (SingleCpu::KernelAndPolling, Some(set)) = (config.single_cpu, &original) {
        pin_to_first_cpu(set)?;
    }
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
    let disks = disks::attach(&config)?;
    if let (SingleCpu::Kernel, Some(set)) = (config.single_cpu, &original) {
        pin_to_first_cpu(set)?;
    }
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
    if let Some(set) = &original {
        // The program's own threads run where they would have.
        set_affinity(set)?;
    }
    // Every kernel descriptor is shown under a host placeholder, so the
    // host's RLIMIT_NOFILE is the one that counts: lift the kernel's own
    // (1024 by default) to its ceiling, fs.nr_open.
    let _ = lkl::syscall::setrlimit(libc::RLIMIT_NOFILE, 1 << 20, 1 << 20);
    disks::mount(&config, &disks.disks)?;
    lkl::netcfg::apply(&config, &names).map_err(|e| e.to_string())?;
    resolve::set_nameservers(config.nameservers.clone());
    // The system-call tier: armed as the constructor's last step.
    crate::hijack::tier::request(config.syscalls);
    let _ = SETTINGS.set(Settings {
        dump: config.dump.clone(),
        pause_at_exit: config.debug.pause_at_exit(),
    });
    if let Some(d) = config.delay_main {
        // LKL's delay_main: microseconds slept once the config is applied,
        // before main.
        diag_debug(&format!("delay_main: sleeping {} us", d.as_micros()));
        std::thread::sleep(d);
    }
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
            // SAFETY: the host's fcntl reads and sets a flag on a descriptor
            // of this process (no pointer arguments).
            unsafe {
                let f = libc::syscall(libc::SYS_fcntl, fd, libc::F_GETFD);
                if f >= 0 && f & i64::from(libc::FD_CLOEXEC) == 0 {
                    libc::syscall(
                        libc::SYS_fcntl,
                        fd,
                        libc::F_SETFD,
                        f | i64::from(libc::FD_CLOEXEC),
                    );
                }
            }
        }
    }
}

extern "C" fn hijack_init() {
    // Libc's functions, before anything can need one in a signal handler.
    crate::hijack::host::look_up_all();
    if lkl::config::check_config_requested(std::env::vars_os()) {
        check_config();
    }
    // What a close left by a signal handler drops above the table.
    fdtable::set_forget_users(control::forget_users);
    if let Some(server) = process::server_from_env() {
        join_tree(&server);
        if let Err(e) = crate::hijack::tier::arm_if_requested() {
            refuse_to_start(&e);
        }
        return;
    }
    let before = open_fds();
    let started = start();
    close_on_exec_since(&before);
    match started {
        Ok(running) => {
            *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(running);
            set_active(true);
        }
        Err(e) => refuse_to_start(&e),
    }
    // The system-call tier (syscalls=all), last: from here on every system
    // call of the program is routed. Never in a tree's kernel server (its
    // own calls are the host's; the tier is for the tree's programs).
    if process::is_server() {
        return;
    }
    if let Err(e) = crate::hijack::tier::arm_if_requested() {
        refuse_to_start(&e);
    }
}

/// The process-tree mode: the tree's kernel is in the server; this image
/// only needs the config's names (disks' mount points, nameservers).
fn join_tree(server: &std::ffi::OsStr) {
    let config = Config::from_sources().unwrap_or_else(|e| refuse_to_start(&e.to_string()));
    crate::hijack::tier::request(config.syscalls);
    if let Err(e) = process::join(server) {
        refuse_to_start(&e);
    }
    disks::route_mounts(&config);
    resolve::set_nameservers(config.nameservers.clone());
    set_active(true);
    crate::hijack::fs::cwd::adopt_kernel_cwd();
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

/// The exit path for a raw `exit_group` that the system-call tier caught
/// (Go's runtime, `_exit`, a static program's exit): libc's exit, which
/// runs our destructor, never ran, so the kernel is halted here first, as
/// the destructor would (TCP data still queued goes out, disks synced).
pub(crate) fn before_exit_group() {
    hijack_fini();
}

extern "C" fn hijack_fini() {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    // The system-call tier: our own exit path goes straight to the host.
    crate::hijack::tier::leave();
    if crate::hijack::tree::client() {
        // The kernel is the tree's: the server closes this process's
        // kernel files when it has ended. Its streams are flushed first
        // (they may write through the kernel); the tree's last process
        // waits for the kernel's halt.
        // SAFETY: fflush(NULL) flushes every stream; we are in the exit
        // path after the program's atexit handlers.
        unsafe { libc::fflush(std::ptr::null_mut()) };
        crate::hijack::tree::wait_for_halt();
        return;
    }
    if forked() {
        // The kernel is the parent's; there is nothing here to halt.
        set_active(false);
        return;
    }
    if SETTINGS.get().is_some_and(|s| s.pause_at_exit) && active() {
        // `debug` 0x100, as LKL: the program stays at exit, its kernel
        // alive (other threads still use it), until a signal ends it.
        diag(&format!(
            "debug 0x100: paused at exit (pid {}); kill it to end",
            std::process::id()
        ));
        loop {
            // SAFETY: libc's pause, no arguments (not a hook of ours).
            unsafe { libc::pause() };
        }
    }
    // From here on other threads stop where they meet the kernel.
    lifecycle::begin_exit();
    if signals::in_kernel_call() {
        // exit() from a signal handler that interrupted a kernel call of
        // this thread: its kernel task is inside that call, which can only
        // return once the handler does, so this thread can make no kernel
        // call, and halting would wait for that call forever.
        set_active(false);
        diag("exit from a signal handler that interrupted a kernel call: the kernel is not shut down (as if killed: data fsync'd to disks is safe, unsent TCP data is lost)");
        return;
    }
    if let Some(s) = SETTINGS.get() {
        if active() {
            dump(&s.dump);
        }
    }
    set_active(false);
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(r) = running {
        disks::finish(r.kernel);
    }
}

/// `vfork`, served by `fork`. A vfork child runs in its parent's memory
/// until it execs, and the calls it makes meanwhile reach our hooks: they
/// would change the parent's tables (Python's subprocess resets every
/// handled signal to SIG_DFL there, which cleared the parent's record of
/// its SIGCHLD handler, so the parent's next SIGCHLD was swallowed; a
/// `close` or `dup2` would close the parent's kernel descriptors). A fork
/// child has a copy of everything, and the fork handling applies
/// (`lifecycle::mark_forked`). The difference is only speed (page tables
/// are copied) and that the parent does not wait for the exec, which no
/// program may rely on. (glibc's posix_spawn, system and popen clone with
/// CLONE_VM too, but their child calls glibc's internal functions only,
/// never a hook; a posix_spawn whose child would use a kernel descriptor
/// is run by the library itself, process/spawn.rs.)
///
/// # Safety
/// libc's contract for `vfork`: the child only execs or `_exit`s.
#[no_mangle]
pub unsafe extern "C" fn vfork() -> libc::pid_t {
    // SAFETY: fork has no preconditions (libc's, not a hook of ours); the
    // caller treats the result as vfork's (0 in the child, the pid or -1
    // in the parent).
    unsafe { libc::fork() }
}

/// # Safety
/// glibc's alias of `vfork`.
#[no_mangle]
pub unsafe extern "C" fn __vfork() -> libc::pid_t {
    // SAFETY: as vfork.
    unsafe { libc::fork() }
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
