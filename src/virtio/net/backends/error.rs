//! [`BackendError`]: why a backend could not be opened, naming the backend,
//! its parameter, what failed and, where we can tell, what to do about it.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;

use super::spec::BackendKind;

/// What went wrong while opening a backend.
#[derive(Debug)]
#[non_exhaustive]
pub enum Cause {
    /// A system call failed. `what` names the object or the step (a path,
    /// "attach (TUNSETIFF)"); `hint` says what usually fixes it.
    Os {
        /// The file, socket or operation that failed.
        what: String,
        /// The error the host kernel returned.
        error: io::Error,
        /// The usual remedy for this error here, if there is one.
        hint: Option<String>,
    },
    /// The parameter names something that cannot be this backend (an
    /// interface name too long for the kernel, a descriptor that is a
    /// stream socket, a path that is not a FIFO...).
    BadParam(String),
    /// The other side broke its protocol (a VDE switch's reply).
    Protocol(String),
    /// This backend is not implemented by this layer (e.g. dpdk).
    Unsupported,
}

/// A backend that could not be opened: `"<kind> <param>: <what failed>"`,
/// e.g. `tap tap0: /dev/net/tun: permission denied (needs CAP_NET_ADMIN
/// or read-write access to /dev/net/tun)`.
#[derive(Debug)]
pub struct BackendError {
    kind: BackendKind,
    param: String,
    cause: Cause,
}

impl BackendError {
    /// An error of backend `kind` opened with `param` (LKL's syntax).
    pub fn new(kind: BackendKind, param: impl Into<String>, cause: Cause) -> Self {
        BackendError {
            kind,
            param: param.into(),
            cause,
        }
    }

    /// A failed system call on `what`, with an optional remedy.
    pub(super) fn os(
        kind: BackendKind,
        param: impl Into<String>,
        what: impl Into<String>,
        error: io::Error,
        hint: Option<String>,
    ) -> Self {
        Self::new(
            kind,
            param,
            Cause::Os {
                what: what.into(),
                error,
                hint,
            },
        )
    }

    /// The backend kind.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The parameter, as LKL writes it (`tap0`, `rx|tx`, `3`...).
    pub fn param(&self) -> &str {
        &self.param
    }

    /// What went wrong.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// The host error, if a system call failed.
    pub fn os_error(&self) -> Option<&io::Error> {
        match &self.cause {
            Cause::Os { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The text of an OS error without Rust's " (os error N)" suffix and with
/// a lower-case first letter, to read well after a colon.
pub(super) fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => text[..i].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Os { what, error, hint } => {
                write!(f, "{what}: {}", describe(error))?;
                if let Some(h) = hint {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
            Cause::BadParam(why) => f.write_str(why),
            Cause::Protocol(why) => write!(f, "protocol error: {why}"),
            Cause::Unsupported => f.write_str("this backend is not available here"),
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.param.is_empty() {
            write!(f, "{}: {}", self.kind, self.cause)
        } else {
            write!(f, "{} {}: {}", self.kind, self.param, self.cause)
        }
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Os { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_backend_param_and_os_error() {
        let e = BackendError::os(
            BackendKind::Tap,
            "tap0",
            "/dev/net/tun",
            io::Error::from_raw_os_error(libc::EACCES),
            Some("needs CAP_NET_ADMIN".into()),
        );
        assert_eq!(
            e.to_string(),
            "tap tap0: /dev/net/tun: permission denied (needs CAP_NET_ADMIN)"
        );
        assert_eq!(e.os_error().unwrap().raw_os_error(), Some(libc::EACCES));
        assert!(std::error::Error::source(&e).is_some());
        let e = BackendError::new(
            BackendKind::Fd,
            "3",
            Cause::BadParam("is a stream socket".into()),
        );
        assert_eq!(e.to_string(), "fd 3: is a stream socket");
        assert!(e.os_error().is_none());
        let e = BackendError::new(BackendKind::Slirp, "", Cause::Unsupported);
        assert_eq!(e.to_string(), "slirp: this backend is not available here");
    }

    #[test]
    fn describe_strips_the_errno_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(describe(&e), "no such file or directory");
        let e = io::Error::other("Custom text");
        assert_eq!(describe(&e), "custom text");
    }
}
