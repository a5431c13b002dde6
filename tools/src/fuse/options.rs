//! How the file system is served (lklfuse's `-o` options end up here).

/// How the file system is served.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Refuse every change (the kernel mount is read-only too).
    pub read_only: bool,
    /// Let the host cache writes and send them in large batches
    /// (`FUSE_WRITEBACK_CACHE`).
    pub writeback_cache: bool,
    /// Largest write request, bytes.
    pub max_write: u32,
    /// Who checks permissions.
    pub permissions: Permissions,
    /// Answer a CREATE opened write-only with `FOPEN_DIRECT_IO`: its
    /// writes go to us at `write` time, bypassing the host's page cache.
    pub create_direct: bool,
}

/// Who checks a caller's permissions.
#[derive(Debug, Clone)]
pub enum Permissions {
    /// The host, before it sends a request (the mount must then have FUSE's
    /// `default_permissions`). Requests run as root in our kernel and new
    /// files are given to their caller afterwards. Every create in a
    /// directory then costs the host one GETATTR of the directory (its
    /// attributes went stale, and the next path walk checks them).
    Host,
    /// Our kernel: each request runs with its caller's uid and gid as the
    /// file-system identity and with these supplementary groups, so the
    /// kernel's own checks apply (modes, POSIX ACLs, sticky directories,
    /// set-group-ID directories) and new files are made with their owner.
    /// Right when every caller has these groups: a mount without
    /// `allow_other`, which the host opens only to processes with the
    /// mounting user's uid and gid.
    Kernel {
        /// Supplementary groups of every caller.
        groups: Vec<u32>,
    },
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            read_only: false,
            writeback_cache: true,
            max_write: 1 << 20,
            permissions: Permissions::Host,
            create_direct: true,
        }
    }
}
