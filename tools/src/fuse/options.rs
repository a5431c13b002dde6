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
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            read_only: false,
            writeback_cache: true,
            max_write: 1 << 20,
        }
    }
}
