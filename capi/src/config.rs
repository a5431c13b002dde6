//! The JSON config: `lkl_load_config_json`/`_env`, `lkl_load_config_pre`
//! (devices, before boot), `lkl_load_config_post` (addresses, routes,
//! sysctls, mounts, after boot), `lkl_unload_config`, over
//! [`lkl::config`] and [`lkl::netcfg`].

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::PathBuf;

use lkl::config::Config;
use lkl::disk::Disk;
use lkl::virtio::net::backends::open_backend;
use lkl::Errno;

use crate::{c_str, disk, entry, net, Failure};

/// `struct lkl_config` (ours: LKL's has one string per key; here the
/// parsed config is behind `state` and only `boot_cmdline` is a field).
#[repr(C)]
pub struct LklConfig {
    /// The library's parsed config; NULL until loaded.
    pub state: *mut c_void,
    /// The config's `boot_cmdline` ("" if none), to pass to
    /// `lkl_start_kernel`; owned by the library.
    pub boot_cmdline: *const c_char,
}

struct State {
    config: Config,
    boot_cmdline: CString,
    /// (index in `config.interfaces`, the device's network-device id).
    interfaces: Vec<(usize, usize)>,
    /// (index in `config.disks`, the disk).
    disks: Vec<(usize, Disk)>,
}

fn loaded(config: Config) -> Result<Box<State>, Failure> {
    let boot_cmdline = CString::new(config.boot_cmdline.clone())
        .map_err(|_| Failure::new(Errno::EINVAL, "boot_cmdline has a NUL byte"))?;
    Ok(Box::new(State {
        config,
        boot_cmdline,
        interfaces: Vec::new(),
        disks: Vec::new(),
    }))
}

/// Frees what `cfg` holds and clears its fields.
///
/// # Safety
/// `cfg` points to a `struct lkl_config` zeroed or filled by this library.
unsafe fn clear(cfg: &mut LklConfig) {
    if !cfg.state.is_null() {
        // SAFETY: `state` came from Box::into_raw in `store`.
        drop(unsafe { Box::from_raw(cfg.state.cast::<State>()) });
    }
    cfg.state = std::ptr::null_mut();
    cfg.boot_cmdline = std::ptr::null();
}

/// # Safety
/// As [`clear`].
unsafe fn store(cfg: &mut LklConfig, state: Box<State>) {
    // SAFETY: the caller's promise.
    unsafe { clear(cfg) };
    cfg.boot_cmdline = state.boot_cmdline.as_ptr();
    cfg.state = Box::into_raw(state).cast();
}

/// # Safety
/// `cfg` is NULL or points to a `struct lkl_config`.
unsafe fn config_mut<'a>(cfg: *mut LklConfig) -> Result<&'a mut LklConfig, Failure> {
    if cfg.is_null() {
        return Err(Failure::new(Errno::EINVAL, "cfg is NULL"));
    }
    // SAFETY: non-NULL; the caller's promise.
    Ok(unsafe { &mut *cfg })
}

fn state(cfg: &mut LklConfig) -> Result<&mut State, Failure> {
    if cfg.state.is_null() {
        return Err(Failure::new(
            Errno::EINVAL,
            "no config loaded (lkl_load_config_json first)",
        ));
    }
    // SAFETY: set by `store` from a Box<State> that lives until `clear`.
    Ok(unsafe { &mut *cfg.state.cast::<State>() })
}

/// A config error: every message on stderr (LKL prints its own too).
fn invalid(e: impl std::fmt::Display) -> Failure {
    let text = e.to_string();
    for line in text.lines() {
        eprintln!("lkl: config: {line}");
    }
    Failure::new(Errno::EINVAL, text)
}

/// Parses and validates the JSON config `jstr` (keys, types and values as
/// `LKL_HIJACK_CONFIG_FILE`'s; relative paths against the current
/// directory) into `cfg`, which must be zeroed or already loaded. 0, or
/// `-EINVAL` with the errors on stderr.
///
/// # Safety
/// `cfg` points to a `struct lkl_config`; `jstr` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lkl_load_config_json(cfg: *mut LklConfig, jstr: *const c_char) -> c_int {
    entry("lkl_load_config_json", || {
        // SAFETY: the caller's promises.
        let (cfg, json) = unsafe { (config_mut(cfg)?, c_str(jstr, "jstr")?) };
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let config = Config::parse_str_in(json, &cwd).map_err(invalid)?;
        let state = loaded(config)?;
        // SAFETY: `cfg` is a struct lkl_config (caller's promise).
        unsafe { store(cfg, state) };
        Ok(0)
    })
}

/// Loads the config as the hijack library does: the `LKL_HIJACK_*`
/// variables, then `LKL_HIJACK_CONFIG_FILE` or `./lkl-hijack.json`.
///
/// # Safety
/// `cfg` points to a `struct lkl_config`, zeroed or already loaded.
#[no_mangle]
pub unsafe extern "C" fn lkl_load_config_env(cfg: *mut LklConfig) -> c_int {
    entry("lkl_load_config_env", || {
        // SAFETY: the caller's promise.
        let cfg = unsafe { config_mut(cfg) }?;
        let config = Config::from_sources().map_err(invalid)?;
        let state = loaded(config)?;
        // SAFETY: as above.
        unsafe { store(cfg, state) };
        Ok(0)
    })
}

/// Before `lkl_start_kernel`: opens every interface's backend and adds it
/// as a network device, and attaches every `disks` image. 0 or a
/// negative errno (the reason on stderr).
///
/// # Safety
/// `cfg` points to a `struct lkl_config` loaded by this library.
#[no_mangle]
pub unsafe extern "C" fn lkl_load_config_pre(cfg: *mut LklConfig) -> c_int {
    entry("lkl_load_config_pre", || {
        // SAFETY: the caller's promise.
        let st = state(unsafe { config_mut(cfg) }?)?;
        if !st.interfaces.is_empty() || !st.disks.is_empty() {
            return Err(Failure::new(Errno::EBUSY, "already called for this config"));
        }
        for (i, iface) in st.config.interfaces.iter().enumerate() {
            let features = iface.offload.bits();
            let backend = open_backend(&iface.backend, features != 0)
                .map_err(|e| invalid(format!("interfaces[{i}]: {e}")))?;
            let id = net::add(backend, features, iface.mac.map(|m| m.0))
                .map_err(|f| invalid(format!("interfaces[{i}]: {}", f.message)))?;
            st.interfaces.push((i, id));
        }
        for (i, d) in st.config.disks.iter().enumerate() {
            let added = Disk::attach(&d.image, d.readonly)
                .map_err(|e| Failure::new(disk::errno_of(&e), format!("disks[{i}]: {e}")))?;
            st.disks.push((i, added));
        }
        Ok(0)
    })
}

/// After `lkl_start_kernel`: mounts the `disks` that name a mount point,
/// then applies the network settings (`mount`, links, addresses, routes,
/// gateways, neighbours, qdiscs, `sysctl`, `nameserver`) in LKL's order.
/// 0 or a negative errno (the reason on stderr). `delay_main`,
/// `singlecpu`, `debug`, `dump` and `log` are the hijack's: a C program
/// reads them from its own config if it wants them.
///
/// # Safety
/// `cfg` points to a `struct lkl_config` loaded by this library.
#[no_mangle]
pub unsafe extern "C" fn lkl_load_config_post(cfg: *mut LklConfig) -> c_int {
    entry("lkl_load_config_post", || {
        // SAFETY: the caller's promise.
        let st = state(unsafe { config_mut(cfg) }?)?;
        for (i, added) in &st.disks {
            let d = &st.config.disks[*i];
            if let (Some(target), Some(fstype)) = (&d.mount, &d.fstype) {
                let part = (d.partition != 0).then_some(d.partition);
                added
                    .mount(part, fstype, target, "")
                    .map_err(|e| Failure::new(disk::errno_of(&e), format!("disks[{i}]: {e}")))?;
            }
        }
        let mut names = Vec::new();
        for (i, id) in &st.interfaces {
            let mac = st.config.interfaces[*i]
                .mac
                .map(|m| m.0)
                .unwrap_or_else(|| net::default_mac(*id));
            names.push((*i, net::ifindex_of(&mac)?.name));
        }
        lkl::netcfg::apply(&st.config, &names).map_err(|e| {
            let f = invalid(&e);
            Failure::new(e.errno().unwrap_or(Errno::EIO), f.message)
        })?;
        Ok(0)
    })
}

/// Frees the config (devices and mounts stay until halt). 0.
///
/// # Safety
/// `cfg` is NULL or points to a `struct lkl_config` zeroed or loaded.
#[no_mangle]
pub unsafe extern "C" fn lkl_unload_config(cfg: *mut LklConfig) -> c_int {
    entry("lkl_unload_config", || {
        // SAFETY: the caller's promise.
        let cfg = unsafe { config_mut(cfg) }?;
        // SAFETY: as above.
        unsafe { clear(cfg) };
        Ok(0)
    })
}
