//! The host's file system as a [`World`].

use std::ffi::{CString, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::world::{kind_of, Kind, Meta, Sink, Source, World};

/// The host's file system.
pub(super) struct Host;

fn host_cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

struct HostFile(fs::File);

impl Source for HostFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Sink for HostFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(&mut self.0, buf)
    }
    fn finish(self: Box<Self>) -> io::Result<()> {
        // Errors surface at write time on the host; close cannot lose them
        // for a local file system, but flush what std buffers (nothing).
        Ok(())
    }
}

impl World for Host {
    fn show(&self, p: &Path) -> String {
        p.display().to_string()
    }

    fn lstat(&self, p: &Path) -> io::Result<Meta> {
        let m = fs::symlink_metadata(p)?;
        Ok(Meta {
            kind: kind_of(m.mode()),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev(),
            atime: (m.atime(), m.atime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }

    fn list(&self, p: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(p)?.map(|e| e.map(|e| e.file_name())).collect()
    }

    fn readlink(&self, p: &Path) -> io::Result<PathBuf> {
        fs::read_link(p)
    }

    fn open(&self, p: &Path) -> io::Result<Box<dyn Source>> {
        Ok(Box::new(HostFile(fs::File::open(p)?)))
    }

    fn create(&self, p: &Path) -> io::Result<Box<dyn Sink>> {
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)?;
        Ok(Box::new(HostFile(f)))
    }

    fn mkdir(&self, p: &Path) -> io::Result<()> {
        fs::create_dir(p)
    }

    fn symlink(&self, target: &Path, p: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, p)
    }

    fn mknod(&self, p: &Path, mode: u32, rdev: u64) -> io::Result<()> {
        let c = host_cpath(p)?;
        // SAFETY: a NUL-terminated path alive for the call.
        let rc = unsafe { libc::mknod(c.as_ptr(), mode, rdev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn unlink(&self, p: &Path) -> io::Result<()> {
        fs::remove_file(p)
    }

    fn set_attrs(&self, p: &Path, m: &Meta) -> io::Result<()> {
        // Ownership only sticks for root, as with cp -a: EPERM is ignored.
        match std::os::unix::fs::lchown(p, Some(m.uid), Some(m.gid)) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            r => r?,
        }
        if m.kind != Kind::Link {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(p, fs::Permissions::from_mode(m.mode & 0o7777))?;
        }
        let c = host_cpath(p)?;
        let ts = [
            libc::timespec {
                tv_sec: m.atime.0,
                tv_nsec: m.atime.1,
            },
            libc::timespec {
                tv_sec: m.mtime.0,
                tv_nsec: m.mtime.1,
            },
        ];
        // SAFETY: a NUL-terminated path and two timespecs alive for the call.
        let rc = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
