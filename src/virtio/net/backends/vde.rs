//! The `vde` backend: a port on a VDE 2 switch (`vde_switch`), spoken
//! directly instead of through libvdeplug.
//!
//! The protocol (vde2's `datasock.c` on the switch side, libvdeplug's
//! `vde_open` on ours), for a switch started with `vde_switch -s DIR`:
//!
//! 1. We bind an `AF_UNIX` `SOCK_DGRAM` socket, our data socket, at a fresh
//!    path (`DIR/.PPPPP-NNNNN`, else the temp dir), so the switch can
//!    reach it.
//! 2. We connect a `SOCK_STREAM` socket to `DIR/ctl` (the switch's control
//!    socket) and send a `struct request_v3`, packed, in host byte order:
//!    `magic` 0xfeedface (u32), `version` 3 (u32), `type` 0
//!    (`REQ_NEW_CONTROL`, an int: any free port), our data socket's
//!    `struct sockaddr_un` (110 bytes), then a description without its NUL.
//! 3. The switch connects a socket of its own to our address and answers
//!    with the `sockaddr_un` of its port's data socket; we connect ours to
//!    it and unlink our path (both connections are made).
//! 4. From then on each datagram is one bare Ethernet frame. The control
//!    connection stays open: closing it frees the port.
//!
//! No virtio-net header and no offloads (as LKL). A switch that goes away
//! is seen only as failing sends (the data socket has no hang-up).

#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{BackendError, Cause};
use super::spec::BackendKind;
use super::{frame_fd_backend, hostio, FrameFd, FrameIo};

/// `SWITCH_MAGIC`.
pub const VDE_MAGIC: u32 = 0xfeed_face;
/// The request version spoken.
pub const VDE_VERSION: u32 = 3;
/// `sizeof(struct sockaddr_un)` on Linux: `sun_family` and 108 path bytes.
pub const SOCKADDR_UN_LEN: usize = 110;
/// The description the switch shows for our port (`vde_switch`'s
/// `port/print`).
const DESCRIPTION: &str = "lkl-hijack";
/// How long the switch may take to answer.
const CTL_TIMEOUT: Duration = Duration::from_secs(5);

/// A port on a VDE switch.
pub struct Vde {
    data: FrameFd,
    /// Held for the port's lifetime; the switch frees the port when it
    /// closes.
    _ctl: UnixStream,
    switch: PathBuf,
    port_path: PathBuf,
}

impl Vde {
    /// Connects to the switch whose control directory is `path` (the `-s`
    /// of `vde_switch`; a control socket itself is accepted too, as old
    /// switches had).
    pub fn open(path: &Path) -> Result<Vde, BackendError> {
        let param = path.display().to_string();
        let kind = BackendKind::Vde;
        let os = |what: String, e: io::Error, hint: Option<String>| {
            BackendError::os(kind, &param, what, e, hint)
        };
        let proto = |why: String| BackendError::new(kind, &param, Cause::Protocol(why));

        // The switch does not know our working directory: absolute paths.
        let switch = fs::canonicalize(path).map_err(|e| {
            let hint = (e.kind() == io::ErrorKind::NotFound)
                .then(|| "is vde_switch running with `-s` naming it?".to_string());
            os(path.display().to_string(), e, hint)
        })?;
        let (dir, ctl_path) = if switch.is_dir() {
            (switch.clone(), switch.join("ctl"))
        } else {
            let dir = switch.parent().unwrap_or(Path::new("/")).to_path_buf();
            (dir, switch.clone())
        };

        let mut ctl = UnixStream::connect(&ctl_path).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => {
                    Some("is vde_switch running with `-s` naming this directory?".into())
                }
                Some(libc::EACCES) => Some("the switch's socket is not ours to use".into()),
                _ => None,
            };
            os(ctl_path.display().to_string(), e, hint)
        })?;
        let timeouts = ctl
            .set_read_timeout(Some(CTL_TIMEOUT))
            .and_then(|()| ctl.set_write_timeout(Some(CTL_TIMEOUT)));
        timeouts.map_err(|e| os("control socket".into(), e, None))?;

        let (data, port_path) = bind_data_socket(&dir).map_err(|e| {
            os(
                "data socket".into(),
                e,
                Some(format!(
                    "could not bind one in {} nor in the temp dir",
                    dir.display()
                )),
            )
        })?;
        // Removes our data socket's path however this ends: once the switch
        // has connected to it, the name is no longer needed.
        let _unlink = Unlink(&port_path);
        set_data_socket_mode(&port_path, &ctl_path);

        let request = request_v3(&port_path, DESCRIPTION)
            .map_err(|e| os(port_path.display().to_string(), e, None))?;
        ctl.write_all(&request)
            .map_err(|e| os("request to the switch".into(), e, None))?;
        let mut reply = [0u8; SOCKADDR_UN_LEN];
        ctl.read_exact(&mut reply).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                proto(
                    "the switch closed the connection without giving a port (full, or refused us)"
                        .into(),
                )
            } else {
                os("reply from the switch".into(), e, None)
            }
        })?;
        let switch_port = parse_sockaddr_un(&reply).map_err(proto)?;
        data.connect(&switch_port)
            .map_err(|e| os(format!("switch port {}", switch_port.display()), e, None))?;
        data.set_nonblocking(true)
            .map_err(|e| os("data socket".into(), e, None))?;
        Ok(Vde {
            data: FrameFd::new(OwnedFd::from(data), FrameIo::Message),
            _ctl: ctl,
            switch,
            port_path: switch_port,
        })
    }

    /// The switch's data socket for our port.
    pub fn port_path(&self) -> &Path {
        &self.port_path
    }
}

/// Unlinks a path when dropped.
struct Unlink<'a>(&'a Path);

impl Drop for Unlink<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

/// Binds a datagram socket at `DIR/.PPPPP-NNNNN` (libvdeplug's names), or
/// in the temp dir if `dir` will not take it.
fn bind_data_socket(dir: &Path) -> io::Result<(UnixDatagram, PathBuf)> {
    let pid = std::process::id();
    let tmp = std::env::temp_dir();
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free name");
    for (base, prefix) in [(dir, "."), (tmp.as_path(), "vde.")] {
        for n in 0..1000u32 {
            let p = base.join(format!("{prefix}{pid:05}-{n:05}"));
            match UnixDatagram::bind(&p) {
                Ok(s) => return Ok((s, p)),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
    }
    Err(last)
}

/// Lets the switch write to our data socket: 0700 if it runs as root or as
/// us, else shared with its group (0770) if we can give the socket that
/// group, else 0777 (libvdeplug's policy when no group is given).
fn set_data_socket_mode(port: &Path, ctl: &Path) {
    let mut mode = 0o700;
    if let Ok(m) = fs::metadata(ctl) {
        if m.uid() != 0 && m.uid() != hostio::geteuid() {
            mode = match std::os::unix::fs::chown(port, None, Some(m.gid())) {
                Ok(()) => 0o770,
                Err(_) => 0o777,
            };
        }
    }
    let _ = fs::set_permissions(port, fs::Permissions::from_mode(mode));
}

/// The packed `struct request_v3` asking for any free port, for a data
/// socket at `data_path`.
pub fn request_v3(data_path: &Path, description: &str) -> io::Result<Vec<u8>> {
    let mut req = Vec::with_capacity(12 + SOCKADDR_UN_LEN + description.len());
    req.extend_from_slice(&VDE_MAGIC.to_ne_bytes());
    req.extend_from_slice(&VDE_VERSION.to_ne_bytes());
    req.extend_from_slice(&0i32.to_ne_bytes()); // REQ_NEW_CONTROL
    req.extend_from_slice(&sockaddr_un(data_path)?);
    req.extend_from_slice(description.as_bytes());
    Ok(req)
}

/// A filesystem `struct sockaddr_un` for `path`, NUL-padded.
fn sockaddr_un(path: &Path) -> io::Result<[u8; SOCKADDR_UN_LEN]> {
    let bytes = path.as_os_str().as_bytes();
    // The path and its NUL must fit sun_path.
    if bytes.len() >= SOCKADDR_UN_LEN - 2 || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path too long for a unix socket address",
        ));
    }
    let mut sa = [0u8; SOCKADDR_UN_LEN];
    // AF_UNIX (1) fits sa_family_t.
    sa[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    sa[2..2 + bytes.len()].copy_from_slice(bytes);
    Ok(sa)
}

/// The path in the switch's reply.
pub fn parse_sockaddr_un(sa: &[u8; SOCKADDR_UN_LEN]) -> Result<PathBuf, String> {
    let family = u16::from_ne_bytes([sa[0], sa[1]]);
    if i32::from(family) != libc::AF_UNIX {
        return Err(format!(
            "the switch answered with address family {family}, not AF_UNIX"
        ));
    }
    let path = &sa[2..];
    let len = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    if len == 0 {
        return Err("the switch answered with an empty address".into());
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&path[..len])))
}

impl fmt::Debug for Vde {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vde")
            .field("switch", &self.switch)
            .field("port", &self.port_path)
            .field("fd", &self.data.as_raw_fd())
            .finish()
    }
}

frame_fd_backend!(Vde, data, vnet_hdr: false);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::net::backends::test_utils::{frame, recv_frame, send_frame, TempDir};
    use crate::virtio::net::NetBackend;
    use std::os::unix::net::UnixListener;
    use std::thread;

    /// A one-port stand-in for vde_switch, doing the switch's side of the
    /// handshake as vde2's datasock.c does, then echoing one frame back.
    fn fake_switch(dir: PathBuf) -> thread::JoinHandle<Vec<u8>> {
        let listener = UnixListener::bind(dir.join("ctl")).unwrap();
        thread::spawn(move || {
            let (mut ctl, _) = listener.accept().unwrap();
            let mut req = [0u8; 512];
            let n = ctl.read(&mut req).unwrap();
            let head = req[..n].to_vec();
            let client = {
                let mut sa = [0u8; SOCKADDR_UN_LEN];
                sa.copy_from_slice(&req[12..12 + SOCKADDR_UN_LEN]);
                parse_sockaddr_un(&sa).unwrap()
            };
            let port_path = dir.join("001.0");
            let port = UnixDatagram::bind(&port_path).unwrap();
            port.connect(&client).unwrap();
            ctl.write_all(&sockaddr_un(&port_path).unwrap()).unwrap();
            let mut buf = [0u8; 2048];
            let n = port.recv(&mut buf).unwrap();
            port.send(&buf[..n]).unwrap();
            // Keep the control connection until the client is done.
            let _ = ctl.read(&mut buf);
            head
        })
    }

    #[test]
    fn speaks_the_switch_protocol() {
        let dir = TempDir::new("vde");
        let switch = fake_switch(dir.0.clone());
        let mut v = Vde::open(&dir.0).unwrap();
        assert!(!v.has_vnet_hdr());
        assert_eq!(v.port_path(), dir.0.join("001.0"));
        let f = frame(1514, 3);
        send_frame(&mut v, &f);
        assert_eq!(recv_frame(&mut v), f, "echoed by the switch");
        drop(v);
        let req = switch.join().unwrap();
        assert_eq!(req.len(), 12 + SOCKADDR_UN_LEN + DESCRIPTION.len());
        assert_eq!(req[..4], VDE_MAGIC.to_ne_bytes());
        assert_eq!(req[4..8], 3u32.to_ne_bytes());
        assert_eq!(req[8..12], [0; 4], "REQ_NEW_CONTROL");
        assert_eq!(&req[12 + SOCKADDR_UN_LEN..], DESCRIPTION.as_bytes());
        // Our data socket's name is gone once connected.
        let left: Vec<_> = fs::read_dir(&dir.0)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().as_bytes().starts_with(b"."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn no_switch_is_a_clear_error() {
        let dir = TempDir::new("vde");
        let e = Vde::open(&dir.0).unwrap_err();
        let ctl = dir.0.join("ctl");
        assert_eq!(
            e.to_string(),
            format!(
                "vde {}: {}: no such file or directory \
                 (is vde_switch running with `-s` naming this directory?)",
                dir.0.display(),
                ctl.display()
            )
        );
        let e = Vde::open(Path::new("/nonexistent/vde")).unwrap_err();
        assert!(e.to_string().contains("is vde_switch running"), "{e}");
    }

    #[test]
    fn a_switch_that_hangs_up_is_a_protocol_error() {
        let dir = TempDir::new("vde");
        let listener = UnixListener::bind(dir.0.join("ctl")).unwrap();
        let t = thread::spawn(move || {
            let (mut ctl, _) = listener.accept().unwrap();
            let mut req = [0u8; 512];
            let _ = ctl.read(&mut req);
        });
        let e = Vde::open(&dir.0).unwrap_err();
        t.join().unwrap();
        assert!(matches!(e.cause(), Cause::Protocol(_)), "{e}");
        assert!(e.to_string().contains("without giving a port"), "{e}");
    }

    #[test]
    fn sockaddr_round_trip_and_checks() {
        let sa = sockaddr_un(Path::new("/tmp/x/001.5")).unwrap();
        assert_eq!(parse_sockaddr_un(&sa).unwrap(), Path::new("/tmp/x/001.5"));
        let long = PathBuf::from(format!("/{}", "a".repeat(120)));
        assert!(sockaddr_un(&long).is_err());
        let mut bad = sa;
        bad[0] = 2;
        bad[1] = 0;
        if cfg!(target_endian = "big") {
            bad.swap(0, 1);
        }
        assert!(parse_sockaddr_un(&bad).is_err());
        let empty = sockaddr_un(Path::new("/")).map(|mut s| {
            s[2] = 0;
            s
        });
        assert!(parse_sockaddr_un(&empty.unwrap()).is_err());
    }
}
