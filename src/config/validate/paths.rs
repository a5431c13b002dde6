//! Paths: host files the config names (resolved against the base
//! directory and looked at now, so a missing FIFO or image is reported at
//! load time) and paths inside the kernel's file system.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

use super::{Ctx, Validator};
use crate::config::error::ConfigError;

impl Validator<'_> {
    pub(super) fn host_path(&self, s: &str, ctx: &Ctx) -> Result<PathBuf, ConfigError> {
        if s.is_empty() {
            return Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: String::new(),
                why: "is empty; a path is needed".into(),
            });
        }
        self.no_nul(s, ctx)?;
        Ok(self.base.join(s))
    }

    pub(super) fn file_error(&self, ctx: &Ctx, file: &Path, why: String) -> ConfigError {
        ConfigError::File {
            at: self.at(ctx),
            file: file.to_path_buf(),
            why,
        }
    }

    pub(super) fn metadata(&self, path: &Path, ctx: &Ctx) -> Result<fs::Metadata, ConfigError> {
        fs::metadata(path).map_err(|e| self.file_error(ctx, path, io_why(&e)))
    }

    /// A disk image: a regular file or a block device we can open in the
    /// mode it will be attached with.
    pub(super) fn check_image(
        &self,
        path: &Path,
        writable: bool,
        ctx: &Ctx,
    ) -> Result<(), ConfigError> {
        let meta = self.metadata(path, ctx)?;
        let kind = meta.file_type();
        if !kind.is_file() && !kind.is_block_device() {
            return Err(self.file_error(
                ctx,
                path,
                format!("is {}, not a disk image or block device", file_kind(&kind)),
            ));
        }
        fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map(drop)
            .map_err(|e| {
                let mode = if writable { "read-write" } else { "read-only" };
                self.file_error(
                    ctx,
                    path,
                    format!("cannot be opened {mode}: {}", io_why(&e)),
                )
            })
    }

    /// A FIFO of the `pipe` backend: it must exist (the peer or the user
    /// makes it beforehand) and not be a directory.
    pub(super) fn check_fifo(&self, path: &Path, ctx: &Ctx) -> Result<(), ConfigError> {
        if self.metadata(path, ctx)?.is_dir() {
            return Err(self.file_error(ctx, path, "is a directory, not a FIFO".into()));
        }
        Ok(())
    }

    /// A path inside the kernel's file system: absolute, no `..`.
    pub(super) fn kernel_path(&self, s: &str, ctx: &Ctx) -> Result<String, ConfigError> {
        let p = Path::new(s);
        let why = if !p.is_absolute() {
            Some("is not an absolute path (paths here are inside the kernel's file system)")
        } else if p.components().any(|c| c == Component::ParentDir) {
            Some("contains \"..\"")
        } else {
            None
        };
        match why {
            Some(why) => Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: s.into(),
                why: why.into(),
            }),
            None => Ok(s.into()),
        }
    }
}

pub(super) fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(super) fn file_kind(t: &fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// An I/O error in words, without Rust's "(os error N)".
pub(crate) fn io_why(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "does not exist".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}
