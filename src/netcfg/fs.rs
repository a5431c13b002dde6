//! The file-system side of network setup, all inside the kernel: pseudo
//! file systems mounted at `/<type>`, sysctls written under `/proc/sys`,
//! and `/etc/resolv.conf`.

use std::net::IpAddr;

use crate::syscall::{self, abi, Errno};

use super::NetcfgError;

fn sys(call: &'static str, what: impl Into<String>) -> impl FnOnce(Errno) -> NetcfgError {
    let what = what.into();
    move |errno| NetcfgError::Syscall { call, what, errno }
}

/// Creates directory `path` unless it exists.
fn mkdir_p(path: &str) -> Result<(), NetcfgError> {
    match syscall::mkdir(path, 0o755) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(sys("mkdir", path)(e)),
    }
}

/// Mounts the pseudo file system `fstype` (`proc`, `sysfs`, `tmpfs`...)
/// at `/<fstype>`, as LKL's `mount` key does. The type is the source too.
pub fn mount_pseudo(fstype: &str) -> Result<String, NetcfgError> {
    if fstype.is_empty() || fstype.contains(['/', '\0']) {
        return Err(NetcfgError::Syscall {
            call: "mount",
            what: format!("file system type {fstype:?}"),
            errno: Errno::EINVAL,
        });
    }
    let target = format!("/{fstype}");
    mkdir_p(&target)?;
    syscall::mount(fstype, &target, fstype, 0, None)
        .map_err(sys("mount", format!("{fstype} at {target}")))?;
    Ok(target)
}

/// Makes sure `/proc/sys` is there, mounting procfs at `/proc` if not
/// (LKL mounts it for its `sysctl` key too).
pub fn ensure_proc() -> Result<(), NetcfgError> {
    if syscall::stat("/proc/sys").is_ok() {
        return Ok(());
    }
    mkdir_p("/proc")?;
    syscall::mount("proc", "/proc", "proc", 0, None).map_err(sys("mount", "proc at /proc"))
}

/// Writes all of `data` to `path` (created with `flags` and mode 0644).
fn write_file(path: &str, data: &[u8], flags: i32) -> Result<(), NetcfgError> {
    let fd = syscall::open(path, flags | abi::O_CLOEXEC, 0o644).map_err(sys("open", path))?;
    let mut rest = data;
    let result = loop {
        if rest.is_empty() {
            break Ok(());
        }
        match syscall::write(fd, rest) {
            Ok(0) => break Err(sys("write", path)(Errno::EIO)),
            Ok(n) => rest = rest.get(n..).unwrap_or(&[]),
            Err(Errno::EINTR) => {}
            Err(e) => break Err(sys("write", path)(e)),
        }
    };
    let closed = syscall::close(fd).map_err(sys("close", path));
    result.and(closed)
}

/// Reads a (small) file in the kernel, as text.
pub fn read_file(path: &str) -> Result<String, NetcfgError> {
    let fd = syscall::open(path, abi::O_RDONLY | abi::O_CLOEXEC, 0).map_err(sys("open", path))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let result = loop {
        match syscall::read(fd, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or(&buf)),
            Err(Errno::EINTR) => {}
            Err(e) => break Err(sys("read", path)(e)),
        }
    };
    let _ = syscall::close(fd);
    result.map(|()| String::from_utf8_lossy(&out).into_owned())
}

/// Writes `value` to the sysctl file `path` (`/proc/sys/...`), mounting
/// procfs first if needed. The kernel takes the value with or without a
/// trailing newline; we write it as given, as LKL does.
pub fn write_sysctl(path: &str, value: &str) -> Result<(), NetcfgError> {
    ensure_proc()?;
    // /proc/sys files exist or not; creating one is never right.
    write_file(path, value.as_bytes(), abi::O_WRONLY)
}

/// The text of `/etc/resolv.conf` for `nameservers`.
pub fn resolv_conf(nameservers: &[IpAddr]) -> String {
    nameservers
        .iter()
        .map(|ns| format!("nameserver {ns}\n"))
        .collect()
}

/// Writes `/etc/resolv.conf` with one `nameserver` line per address
/// (creating `/etc`), replacing the file.
pub fn write_resolv_conf(nameservers: &[IpAddr]) -> Result<(), NetcfgError> {
    mkdir_p("/etc")?;
    write_file(
        "/etc/resolv.conf",
        resolv_conf(nameservers).as_bytes(),
        abi::O_WRONLY | abi::O_CREAT | abi::O_TRUNC,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lines() {
        let ns: Vec<IpAddr> = vec![
            "8.8.8.8".parse().unwrap(),
            "2001:4860::8888".parse().unwrap(),
        ];
        assert_eq!(
            resolv_conf(&ns),
            "nameserver 8.8.8.8\nnameserver 2001:4860::8888\n"
        );
        assert_eq!(resolv_conf(&[]), "");
    }
}
