//! Boot at load time, halt at exit. The constructor reads the config
//! (LKL_HIJACK_CONFIG_FILE, ./lkl-hijack.json or the LKL_HIJACK_*
//! variables), attaches the interfaces, boots and applies the config. A bad
//! config stops the program before `main` with the error on stderr and
//! status 1: nothing silently falls back to the host's network. The
//! config's disks are attached before boot and mounted after it (disks.rs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

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
        let backend = open_backend(&iface.backend, features != 0)
            .map_err(|e| format!("interfaces[{i}]: {e}"))?;
        let mac = iface
            .mac
            .map(|m| m.0)
            .unwrap_or([0x02, 0x00, 0x00, 0x00, 0x00, i as u8 + 1]);
        let net =
            Net::new(backend, features, Some(mac)).map_err(|e| format!("interfaces[{i}]: {e}"))?;
        devices.push(
            lkl::devices::attach(Box::new(net)).map_err(|e| format!("interfaces[{i}]: {e}"))?,
        );
        names.push((i, format!("eth{i}")));
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
    crate::disks::mount(&config, &disks.disks)?;
    lkl::netcfg::apply(&config, &names).map_err(|e| e.to_string())?;
    Ok(Running {
        kernel,
        _devices: devices,
        _disks: disks,
    })
}

extern "C" fn hijack_init() {
    match start() {
        Ok(running) => {
            *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(running);
            ACTIVE.store(true, Ordering::Release);
        }
        Err(e) => fail(&e),
    }
}

extern "C" fn hijack_fini() {
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
