//! The copy: files, directories (recursively), links and special files,
//! attributes last; errors reported one line each; a progress line.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::world::{Kind, World};
use super::CHUNK;

/// The text of an error, without Rust's "(os error N)" suffix.
pub(super) fn msg(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let s = e.to_string();
            s.strip_suffix(&format!(" (os error {n})"))
                .unwrap_or(&s)
                .to_owned()
        }
        None => e.to_string(),
    }
}

/// Errors after which going on is pointless.
fn fatal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EROFS | libc::EIO | libc::EDQUOT | libc::ESHUTDOWN)
    )
}

pub(super) struct Progress {
    pub(super) enabled: bool,
    pub(super) prog: &'static str,
    pub(super) start: Instant,
    pub(super) last: Instant,
    pub(super) bytes: u64,
    pub(super) files: u64,
    pub(super) shown: bool,
}

impl Progress {
    fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.enabled && self.last.elapsed() >= Duration::from_millis(500) {
            self.last = Instant::now();
            self.show();
        }
    }

    fn show(&mut self) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let mb = self.bytes as f64 / 1e6;
        eprint!(
            "\r{}: {} files, {:.1} MB, {:.1} MB/s   ",
            self.prog,
            self.files,
            mb,
            mb / secs
        );
        self.shown = true;
    }

    pub(super) fn done(&mut self) {
        if self.enabled && self.shown {
            self.show();
            eprintln!();
        }
    }
}

pub(super) struct Copier<'a> {
    pub(super) src: &'a dyn World,
    pub(super) dst: &'a dyn World,
    pub(super) prog: &'static str,
    pub(super) buf: Vec<u8>,
    pub(super) errors: usize,
    /// `-o UID` / `-g GID`: the owner every copy gets instead of its source's.
    pub(super) owner: Option<u32>,
    pub(super) group: Option<u32>,
    pub(super) progress: Progress,
}

/// Stop copying (a fatal error was reported).
pub(super) struct Abort;

impl Copier<'_> {
    fn report(&mut self, what: &str, w: &dyn World, p: &Path, e: &io::Error) -> Result<(), Abort> {
        if self.progress.shown {
            eprintln!();
            self.progress.shown = false;
        }
        eprintln!("{}: {what} {}: {}", self.prog, w.show(p), msg(e));
        self.errors += 1;
        if fatal(e) {
            Err(Abort)
        } else {
            Ok(())
        }
    }

    /// Copies `s` (in the source world) to `d` (in the destination).
    pub(super) fn copy(&mut self, s: &Path, d: &Path) -> Result<(), Abort> {
        let m = match self.src.lstat(s) {
            Ok(m) => m,
            Err(e) => return self.report("cannot stat", self.src, s, &e),
        };
        let made = match m.kind {
            Kind::Dir => self.copy_dir(s, d),
            Kind::File => self.copy_file(s, d),
            Kind::Link => self.copy_link(s, d),
            Kind::Special => {
                self.replace(d);
                let dst = self.dst;
                match dst.mknod(d, m.mode, m.rdev) {
                    Ok(()) => Ok(true),
                    Err(e) => self.report("cannot create", dst, d, &e).map(|()| false),
                }
            }
        }?;
        self.progress.files += 1;
        if made {
            let dst = self.dst;
            let mut m = m;
            m.uid = self.owner.unwrap_or(m.uid);
            m.gid = self.group.unwrap_or(m.gid);
            if let Err(e) = dst.set_attrs(d, &m) {
                self.report("cannot set attributes of", dst, d, &e)?;
            } else if self.owner.is_some() || self.group.is_some() {
                // An owner asked for with -o/-g must stick (the host
                // ignores EPERM for the owners `cp -a` carries over).
                let got = dst.lstat(d);
                if !got.is_ok_and(|g| g.uid == m.uid && g.gid == m.gid) {
                    let e = io::Error::from_raw_os_error(libc::EPERM);
                    self.report(
                        &format!("cannot give owner {}:{} to", m.uid, m.gid),
                        dst,
                        d,
                        &e,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Removes a non-directory at `d` so it can be made anew.
    pub(super) fn replace(&mut self, d: &Path) {
        if self.dst.lstat(d).is_ok_and(|m| m.kind != Kind::Dir) {
            let _ = self.dst.unlink(d);
        }
    }

    fn copy_dir(&mut self, s: &Path, d: &Path) -> Result<bool, Abort> {
        let dst = self.dst;
        match dst.mkdir(d) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                if !dst.lstat(d).is_ok_and(|m| m.kind == Kind::Dir) {
                    self.report("cannot overwrite non-directory", dst, d, &e)?;
                    return Ok(false);
                }
            }
            Err(e) => {
                self.report("cannot create directory", dst, d, &e)?;
                return Ok(false);
            }
        }
        let src = self.src;
        let mut names = match src.list(s) {
            Ok(n) => n,
            Err(e) => {
                self.report("cannot list", src, s, &e)?;
                return Ok(true);
            }
        };
        names.sort();
        for n in names {
            self.copy(&s.join(&n), &d.join(&n))?;
        }
        Ok(true)
    }

    fn copy_link(&mut self, s: &Path, d: &Path) -> Result<bool, Abort> {
        let src = self.src;
        let target = match src.readlink(s) {
            Ok(t) => t,
            Err(e) => return self.report("cannot read link", src, s, &e).map(|()| false),
        };
        self.replace(d);
        let dst = self.dst;
        match dst.symlink(&target, d) {
            Ok(()) => Ok(true),
            Err(e) => self
                .report("cannot create symlink", dst, d, &e)
                .map(|()| false),
        }
    }

    fn copy_file(&mut self, s: &Path, d: &Path) -> Result<bool, Abort> {
        let src = self.src;
        let dst = self.dst;
        let mut input = match src.open(s) {
            Ok(f) => f,
            Err(e) => return self.report("cannot open", src, s, &e).map(|()| false),
        };
        if self.dst.lstat(d).is_ok_and(|m| m.kind == Kind::Link) {
            let _ = self.dst.unlink(d);
        }
        let mut out = match dst.create(d) {
            Ok(f) => f,
            Err(e) => return self.report("cannot create", dst, d, &e).map(|()| false),
        };
        if self.buf.is_empty() {
            self.buf = vec![0; CHUNK];
        }
        loop {
            let n = match input.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = out.finish();
                    return self.report("cannot read", src, s, &e).map(|()| false);
                }
            };
            if let Err(e) = out.write_all(&self.buf[..n]) {
                let _ = out.finish();
                return self.report("cannot write", dst, d, &e).map(|()| false);
            }
            self.progress.add(n as u64);
        }
        if let Err(e) = out.finish() {
            return self.report("cannot write", dst, d, &e).map(|()| false);
        }
        Ok(true)
    }
}
