//! Which world a path belongs to. A path under a configured disk's mount
//! point goes to the kernel, every other path to the host. The decision is
//! lexical: the path is made absolute (against the program's working
//! directory, or the directory a `*at` call names) and `.`/`..` are
//! folded before it is compared with the mount points. Symbolic links are
//! followed by the world that holds them: a host link that points under a
//! mount point is not followed into the kernel, and a link on a disk with
//! an absolute target is resolved in the kernel's tree.
//!
//! The working directory: while the program's is on the host, the host
//! kernel keeps it. When the program changes into a directory on a disk,
//! the kernel's working directory moves there and this module remembers
//! its path; the host's stays where it was (glibc-internal calls that do
//! not reach the hooks, such as `dlopen` of a relative name, still resolve
//! against it).

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{OnceLock, RwLock};

use libc::AT_FDCWD;

use crate::hijack::call::{arg, kcall};
use crate::hijack::fdtable;
use crate::hijack::lifecycle::{active, park_if_exiting};

/// Where a call goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// The host, with the program's path unchanged.
    Host,
    /// The host, with this absolute path instead (a relative path resolved
    /// against a working directory on a disk that led out of it).
    HostPath(CString),
    /// The kernel: a kernel directory descriptor (or AT_FDCWD) and a path.
    Kernel(i32, CString),
}

impl Route {
    /// The path the host gets: the program's `orig`, or the one routing
    /// rewrote.
    pub fn host_path(&self, orig: *const c_char) -> *const c_char {
        match self {
            Route::HostPath(c) => c.as_ptr(),
            _ => orig,
        }
    }
}

/// The mount points of the configured disks (normalised, absolute).
static MOUNTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();

/// The program's working directory when it is on a disk.
static KCWD: RwLock<Option<Vec<u8>>> = RwLock::new(None);

/// Records the mount points (once, from init).
pub fn set_mounts(points: Vec<String>) {
    let list = points
        .into_iter()
        .map(|p| normalise(b"/", p.as_bytes()))
        .filter(|p| p != b"/")
        .collect();
    let _ = MOUNTS.set(list);
}

/// The mount points, as given to `set_mounts` (normalised).
pub fn mount_points() -> Vec<String> {
    MOUNTS
        .get()
        .map(|m| {
            m.iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// True if some disk is mounted (path routing is on).
pub fn routing() -> bool {
    MOUNTS.get().is_some_and(|m| !m.is_empty())
}

/// The working directory on a disk, if the program is in one.
pub fn kernel_cwd() -> Option<Vec<u8>> {
    KCWD.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Records the program's working directory: `Some` on a disk, `None` on
/// the host.
pub fn set_kernel_cwd(cwd: Option<Vec<u8>>) {
    *KCWD.write().unwrap_or_else(|e| e.into_inner()) = cwd;
}

/// Folds `path` onto `base` (absolute) lexically: empty and `.` components
/// go, `..` removes the last one (never above `/`). A trailing slash (or a
/// trailing `.`) is kept as a trailing slash, so "is a directory" checks
/// stay the kernel's.
pub fn normalise(base: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let joined = if path.first() == Some(&b'/') {
        [path].to_vec()
    } else {
        [base, path].to_vec()
    };
    for piece in joined {
        for c in piece.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
    }
    let mut out = Vec::with_capacity(path.len() + base.len() + 1);
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    let trailing = path.ends_with(b"/") || path.ends_with(b"/.") || path == b".";
    if out.is_empty() || trailing {
        out.push(b'/');
    }
    out
}

/// True if `abs` (normalised) is a mount point or below one.
fn under_mount(abs: &[u8]) -> bool {
    let abs = abs.strip_suffix(b"/").unwrap_or(abs);
    MOUNTS.get().is_some_and(|m| {
        m.iter()
            .any(|mp| abs.starts_with(mp) && (abs.len() == mp.len() || abs[mp.len()] == b'/'))
    })
}

/// The host's working directory, from the host kernel (never our hook).
fn host_cwd() -> Option<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the buffer is PATH_MAX bytes; the kernel writes a
    // NUL-terminated path into it.
    let r = unsafe {
        crate::hijack::host::host_syscall!(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len())
    };
    if r <= 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    buf.truncate(len);
    (buf.first() == Some(&b'/')).then_some(buf)
}

/// The host path of host descriptor `fd` (a directory), from /proc.
fn host_fd_path(fd: c_int) -> Option<Vec<u8>> {
    let link = CString::new(format!("/proc/self/fd/{fd}")).ok()?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: a NUL-terminated name and a buffer of buf.len() bytes.
    let r = unsafe {
        crate::hijack::host::host_syscall!(
            libc::SYS_readlinkat,
            AT_FDCWD,
            link.as_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if r <= 0 {
        return None;
    }
    buf.truncate(r as usize);
    (buf.first() == Some(&b'/')).then_some(buf)
}

fn cstring(v: Vec<u8>) -> Option<CString> {
    CString::new(v).ok()
}

fn kernel_route(abs: Vec<u8>) -> Route {
    match cstring(abs) {
        Some(c) => Route::Kernel(AT_FDCWD, c),
        None => Route::Host,
    }
}

/// `path` made absolute against host directory `dir`: to the kernel if it
/// lands on a disk, else to the host unchanged.
fn from_host_dir(dir: &[u8], path: &[u8]) -> Route {
    let abs = normalise(dir, path);
    if under_mount(&abs) {
        kernel_route(abs)
    } else {
        Route::Host
    }
}

/// The kernel call `nr` on a kernel path (a `Route::Kernel`'s directory
/// and path), with the call's other arguments after them.
pub fn kcall_path(nr: i64, dir: i32, path: &CStr, rest: [i64; 4]) -> i64 {
    let [a, b, c, d] = rest;
    kcall(nr, [dir.into(), arg!(path.as_ptr()), a, b, c, d])
}

/// Where `path`, relative to `dirfd` as for the `*at` calls, goes.
pub fn route(dirfd: c_int, path: *const c_char) -> Route {
    if path.is_null() {
        return Route::Host;
    }
    if !active() {
        // Not while another thread unmounts the disks: the path would
        // fall back to the host.
        park_if_exiting();
        return Route::Host;
    }
    // SAFETY: the program passes a NUL-terminated path.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    if bytes.is_empty() || (dirfd != AT_FDCWD && bytes.first() != Some(&b'/')) {
        // Relative to a descriptor (or the descriptor itself, with
        // AT_EMPTY_PATH): a kernel descriptor takes it as it is.
        if let Some(k) = fdtable::kernel_fd(dirfd) {
            return match cstring(bytes.to_vec()) {
                Some(c) => Route::Kernel(k, c),
                None => Route::Host,
            };
        }
    }
    if !routing() || bytes.is_empty() {
        return Route::Host;
    }
    if bytes[0] == b'/' {
        return from_host_dir(b"/", bytes);
    }
    if dirfd == AT_FDCWD {
        if let Some(kcwd) = kernel_cwd() {
            let abs = normalise(&kcwd, bytes);
            if under_mount(&abs) {
                return kernel_route(abs);
            }
            return match cstring(abs) {
                Some(c) => Route::HostPath(c),
                None => Route::Host,
            };
        }
        return host_cwd().map_or(Route::Host, |cwd| from_host_dir(&cwd, bytes));
    }
    // A host directory descriptor: it may be a parent of a mount point.
    host_fd_path(dirfd).map_or(Route::Host, |dir| from_host_dir(&dir, bytes))
}
