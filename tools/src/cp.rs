//! `cptofs` / `cpfromfs`: copy files into or out of a file-system image,
//! like `cp -a`, with the image mounted in a Linux kernel inside this
//! process (no root, no loop device). One implementation; the mode comes
//! from the program's name.
//!
//! Both sides are a [`World`] (the host's file system, or the image as the
//! kernel sees it), so one copy routine serves both directions: regular
//! files, directories (recursively), symlinks, device nodes and FIFOs, with
//! owner, mode and timestamps (set last, directories after their contents).

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lkl::disk::{self, Disk};
use lkl::host::Console;
use lkl::syscall::{self as sys, abi, Errno};
use lkl::{BootOptions, Kernel};

/// Where the image is mounted inside the kernel.
const MOUNT_POINT: &str = "/mnt/lkl-image";
/// Bytes moved per read/write call.
const CHUNK: usize = 1 << 20;
/// Kernel RAM (untouched pages cost nothing).
const KERNEL_MEM: u64 = 256 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    /// Host to image.
    ToFs,
    /// Image to host.
    FromFs,
}

impl Direction {
    fn prog(self) -> &'static str {
        match self {
            Direction::ToFs => "cptofs",
            Direction::FromFs => "cpfromfs",
        }
    }
}

struct Options {
    fstype: String,
    image: PathBuf,
    partition: Option<u32>,
    printk: bool,
    selinux: Option<String>,
    verbose: bool,
    mount_opts: String,
    sources: Vec<OsString>,
    dest: OsString,
}

fn usage(d: Direction) -> String {
    let (src, dst) = match d {
        Direction::ToFs => ("host paths", "a path in the image"),
        Direction::FromFs => ("paths in the image", "a host path"),
    };
    format!(
        "Usage: {prog} -t FSTYPE -i IMAGE [-P PART] [-p] [-s SELINUX_CTX] [-o OPTS] [-v] SRC... DST\n\
         Copies SRC ({src}) to DST ({dst}) like `cp -a`: directories recursively,\n\
         symlinks, device nodes and FIFOs, with owner, mode and timestamps.\n\
         The last path component of a SRC may be a glob (*, ?, [...]).\n\
         \n\
         \x20 -t, --filesystem-type FSTYPE  file system of the image (ext4, vfat, xfs, btrfs, ...)\n\
         \x20 -i, --image IMAGE             the image file\n\
         \x20 -P, --partition PART          use partition PART (MBR or GPT) instead of the whole image\n\
         \x20 -p, --enable-printk           show the kernel's messages on stderr\n\
         \x20 -s, --selinux CTX             label every copied file with SELinux context CTX (cptofs)\n\
         \x20 -o, --options OPTS            extra mount options\n\
         \x20 -v, --verbose                 show progress even when stderr is not a terminal\n\
         \x20 -h, --help                    this help\n",
        prog = d.prog()
    )
}

/// A one-line error for the user.
struct Fail(String);

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_args(d: Direction, args: Vec<OsString>) -> Result<Option<Options>, Fail> {
    let mut fstype = None;
    let mut image = None;
    let mut partition = None;
    let mut printk = false;
    let mut selinux = None;
    let mut verbose = false;
    let mut mount_opts = String::new();
    let mut paths = Vec::new();
    let mut it = args.into_iter();
    let mut only_paths = false;
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        if only_paths || !s.starts_with('-') || s == "-" {
            paths.push(a);
            continue;
        }
        let mut value = |name: &str| -> Result<String, Fail> {
            it.next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| Fail(format!("option {name} needs a value")))
        };
        match s.as_str() {
            "--" => only_paths = true,
            "-h" | "--help" => return Ok(None),
            "-t" | "--filesystem-type" => fstype = Some(value(&s)?),
            "-i" | "--image" => image = Some(PathBuf::from(value(&s)?)),
            "-P" | "--partition" => {
                let v = value(&s)?;
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Fail(format!("bad partition number {v:?}")))?;
                partition = Some(n);
            }
            "-p" | "--enable-printk" => printk = true,
            "-s" | "--selinux" => selinux = Some(value(&s)?),
            "-o" | "--options" => mount_opts = value(&s)?,
            "-v" | "--verbose" => verbose = true,
            _ => return Err(Fail(format!("unknown option {s} (see --help)"))),
        }
    }
    let fstype = fstype.ok_or_else(|| Fail("missing -t FSTYPE (see --help)".into()))?;
    let image = image.ok_or_else(|| Fail("missing -i IMAGE (see --help)".into()))?;
    if paths.len() < 2 {
        return Err(Fail("need at least one SRC and a DST (see --help)".into()));
    }
    if selinux.is_some() && d == Direction::FromFs {
        return Err(Fail(
            "-s labels files written to an image: cptofs only".into(),
        ));
    }
    let dest = paths.pop().unwrap_or_default();
    Ok(Some(Options {
        fstype,
        image,
        partition,
        printk,
        selinux,
        verbose,
        mount_opts,
        sources: paths,
        dest,
    }))
}

// ---- the two worlds ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    File,
    Dir,
    Link,
    /// Device node, FIFO or socket: made with mknod.
    Special,
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    kind: Kind,
    /// Full st_mode (type and permission bits).
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
    atime: (i64, i64),
    mtime: (i64, i64),
}

fn kind_of(mode: u32) -> Kind {
    match mode & abi::S_IFMT {
        abi::S_IFDIR => Kind::Dir,
        abi::S_IFREG => Kind::File,
        0o120000 => Kind::Link,
        _ => Kind::Special,
    }
}

/// An open file being read.
trait Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// An open file being written; `finish` closes it and reports late errors.
trait Sink {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A file system to copy from or to. Paths are absolute in that world.
trait World {
    /// How a path is shown in messages.
    fn show(&self, p: &Path) -> String;
    fn lstat(&self, p: &Path) -> io::Result<Meta>;
    fn list(&self, p: &Path) -> io::Result<Vec<OsString>>;
    fn readlink(&self, p: &Path) -> io::Result<PathBuf>;
    fn open(&self, p: &Path) -> io::Result<Box<dyn Source>>;
    fn create(&self, p: &Path) -> io::Result<Box<dyn Sink>>;
    fn mkdir(&self, p: &Path) -> io::Result<()>;
    fn symlink(&self, target: &Path, p: &Path) -> io::Result<()>;
    fn mknod(&self, p: &Path, mode: u32, rdev: u64) -> io::Result<()>;
    fn unlink(&self, p: &Path) -> io::Result<()>;
    /// Owner, mode (not for links) and times, in that order.
    fn set_attrs(&self, p: &Path, m: &Meta) -> io::Result<()>;
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.0)
}

/// The host's file system.
struct Host;

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

/// The image, as the kernel sees it under [`MOUNT_POINT`].
struct Image {
    name: String,
    selinux: Option<String>,
}

impl Image {
    fn k(&self, p: &Path) -> PathBuf {
        let rel = p.strip_prefix("/").unwrap_or(p);
        Path::new(MOUNT_POINT).join(rel)
    }
}

struct KernelFile(i32);

impl Drop for KernelFile {
    fn drop(&mut self) {
        if self.0 >= 0 {
            let _ = sys::close(self.0);
        }
    }
}

impl Source for KernelFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(self.0, buf).map_err(errno_io)
    }
}

impl Sink for KernelFile {
    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match sys::write(self.0, buf) {
                Ok(0) => return Err(errno_io(Errno::ENOSPC)),
                Ok(n) => buf = &buf[n..],
                Err(Errno::EINTR) => {}
                Err(e) => return Err(errno_io(e)),
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let fd = std::mem::replace(&mut self.0, -1);
        sys::close(fd).map_err(errno_io)
    }
}

impl World for Image {
    fn show(&self, p: &Path) -> String {
        format!("{}:{}", self.name, p.display())
    }

    fn lstat(&self, p: &Path) -> io::Result<Meta> {
        let st = sys::fstatat(
            abi::AT_FDCWD,
            self.k(p).as_os_str(),
            abi::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno_io)?;
        Ok(Meta {
            kind: kind_of(st.st_mode),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev,
            atime: (st.st_atime, st.st_atime_nsec as i64),
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
        })
    }

    fn list(&self, p: &Path) -> io::Result<Vec<OsString>> {
        let fd = sys::openat(
            abi::AT_FDCWD,
            self.k(p).as_os_str(),
            abi::O_RDONLY | abi::O_DIRECTORY | abi::O_CLOEXEC,
            0,
        )
        .map_err(errno_io)?;
        let fd = KernelFile(fd);
        let mut names = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = sys::getdents64(fd.0, &mut buf).map_err(errno_io)?;
            if n == 0 {
                break;
            }
            parse_dirents(&buf[..n], &mut names);
        }
        Ok(names)
    }

    fn readlink(&self, p: &Path) -> io::Result<PathBuf> {
        sys::readlink(self.k(p).as_os_str()).map_err(errno_io)
    }

    fn open(&self, p: &Path) -> io::Result<Box<dyn Source>> {
        let fd = sys::openat(
            abi::AT_FDCWD,
            self.k(p).as_os_str(),
            abi::O_RDONLY | abi::O_CLOEXEC | abi::O_NOFOLLOW,
            0,
        )
        .map_err(errno_io)?;
        Ok(Box::new(KernelFile(fd)))
    }

    fn create(&self, p: &Path) -> io::Result<Box<dyn Sink>> {
        let fd = sys::openat(
            abi::AT_FDCWD,
            self.k(p).as_os_str(),
            abi::O_WRONLY | abi::O_CREAT | abi::O_TRUNC | abi::O_CLOEXEC | abi::O_NOFOLLOW,
            0o600,
        )
        .map_err(errno_io)?;
        Ok(Box::new(KernelFile(fd)))
    }

    fn mkdir(&self, p: &Path) -> io::Result<()> {
        sys::mkdirat(abi::AT_FDCWD, self.k(p).as_os_str(), 0o700).map_err(errno_io)
    }

    fn symlink(&self, target: &Path, p: &Path) -> io::Result<()> {
        sys::symlink(target.as_os_str(), self.k(p).as_os_str()).map_err(errno_io)
    }

    fn mknod(&self, p: &Path, mode: u32, rdev: u64) -> io::Result<()> {
        sys::mknodat(abi::AT_FDCWD, self.k(p).as_os_str(), mode, rdev).map_err(errno_io)
    }

    fn unlink(&self, p: &Path) -> io::Result<()> {
        sys::unlinkat(abi::AT_FDCWD, self.k(p).as_os_str(), 0).map_err(errno_io)
    }

    fn set_attrs(&self, p: &Path, m: &Meta) -> io::Result<()> {
        let k = self.k(p);
        if let Some(ctx) = &self.selinux {
            let mut v = ctx.as_bytes().to_vec();
            v.push(0);
            sys::lsetxattr(k.as_os_str(), "security.selinux", &v, 0).map_err(errno_io)?;
        }
        // File systems without owners (vfat) refuse chown with EPERM.
        match sys::lchown(k.as_os_str(), Some(m.uid), Some(m.gid)) {
            Err(Errno::EPERM) | Ok(()) => {}
            Err(e) => return Err(errno_io(e)),
        }
        if m.kind != Kind::Link {
            // vfat keeps only some mode bits and refuses the rest.
            match sys::fchmodat(abi::AT_FDCWD, k.as_os_str(), m.mode & 0o7777, 0) {
                Err(Errno::EPERM) | Ok(()) => {}
                Err(e) => return Err(errno_io(e)),
            }
        }
        let ts = [
            abi::Timespec {
                tv_sec: m.atime.0,
                tv_nsec: m.atime.1,
            },
            abi::Timespec {
                tv_sec: m.mtime.0,
                tv_nsec: m.mtime.1,
            },
        ];
        sys::utimensat(
            abi::AT_FDCWD,
            k.as_os_str(),
            Some(ts),
            abi::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno_io)
    }
}

/// Appends the names in a `getdents64` buffer (but `.` and `..`).
fn parse_dirents(buf: &[u8], out: &mut Vec<OsString>) {
    let mut off = 0;
    while off + 19 < buf.len() {
        let reclen = usize::from(u16::from_ne_bytes([buf[off + 16], buf[off + 17]]));
        if reclen < 20 || off + reclen > buf.len() {
            break;
        }
        let name = &buf[off + 19..off + reclen];
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        let name = &name[..end];
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name.to_vec()));
        }
        off += reclen;
    }
}

// ---- globbing ----

/// Shell-style match of `name` against `pat`: `*`, `?`, `[...]` (with `!`
/// or `^` negation and ranges), `\` escapes. A leading `.` must be matched
/// explicitly, as in the shell.
fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pat.first() != Some(&b'.') {
        return false;
    }
    fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
        // Returns (matched, length of the class in pat) or None if unclosed.
        let mut i = 1;
        let negate = matches!(pat.get(1), Some(b'!' | b'^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < pat.len() {
            if pat[i] == b']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let lo = pat[i];
            if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
                if (lo..=pat[i + 2]).contains(&c) {
                    matched = true;
                }
                i += 3;
            } else {
                if lo == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    // Iterative matcher with backtracking on the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match class(&pat[p..], name[n]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => (name[n] == b'[').then_some(1),
            },
            Some(b'\\') if p + 1 < pat.len() => (pat[p + 1] == name[n]).then_some(2),
            Some(&c) => (c == name[n]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                p += len;
                n += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|c| *c == b'*')
}

fn has_glob(s: &[u8]) -> bool {
    s.iter().any(|c| matches!(c, b'*' | b'?' | b'['))
}

/// Expands a glob in the last component of `src` (absolute in `w`).
fn expand(w: &dyn World, src: &Path) -> Result<Vec<PathBuf>, String> {
    let Some(last) = src.file_name() else {
        return Ok(vec![src.to_path_buf()]);
    };
    if !has_glob(last.as_bytes()) || w.lstat(src).is_ok() {
        return Ok(vec![src.to_path_buf()]);
    }
    let parent = src.parent().unwrap_or(Path::new("/"));
    let mut names = w
        .list(parent)
        .map_err(|e| format!("cannot list {}: {}", w.show(parent), msg(&e)))?;
    names.retain(|n| glob_match(last.as_bytes(), n.as_bytes()));
    if names.is_empty() {
        return Err(format!("{}: no match", w.show(src)));
    }
    names.sort();
    Ok(names.into_iter().map(|n| parent.join(n)).collect())
}

// ---- copying ----

/// The text of an error, without Rust's "(os error N)" suffix.
fn msg(e: &io::Error) -> String {
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

struct Progress {
    enabled: bool,
    prog: &'static str,
    start: Instant,
    last: Instant,
    bytes: u64,
    files: u64,
    shown: bool,
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

    fn done(&mut self) {
        if self.enabled && self.shown {
            self.show();
            eprintln!();
        }
    }
}

struct Copier<'a> {
    src: &'a dyn World,
    dst: &'a dyn World,
    prog: &'static str,
    buf: Vec<u8>,
    errors: usize,
    progress: Progress,
}

/// Stop copying (a fatal error was reported).
struct Abort;

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
    fn copy(&mut self, s: &Path, d: &Path) -> Result<(), Abort> {
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
            if let Err(e) = dst.set_attrs(d, &m) {
                self.report("cannot set attributes of", dst, d, &e)?;
            }
        }
        Ok(())
    }

    /// Removes a non-directory at `d` so it can be made anew.
    fn replace(&mut self, d: &Path) {
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

/// Where `src` goes: into `dest` if that is a directory, else `dest`.
fn target_for(src: &Path, dest: &Path, dest_is_dir: bool) -> PathBuf {
    match src.file_name() {
        Some(n) if dest_is_dir => dest.join(n),
        _ => dest.to_path_buf(),
    }
}

/// Makes a path absolute in its world: host paths against the working
/// directory, image paths against the image's root.
fn absolute(p: &OsStr, host: bool) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    if host {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    } else {
        Path::new("/").join(p)
    }
}

/// Strips a trailing `/.` or `/` so `file_name` sees the last real name.
fn tidy(p: PathBuf) -> PathBuf {
    let s = p.as_os_str().as_bytes();
    let mut end = s.len();
    while end > 1 && s[end - 1] == b'/' {
        end -= 1;
    }
    PathBuf::from(OsStr::from_bytes(&s[..end]))
}

fn run(d: Direction, o: Options) -> Result<usize, Fail> {
    if !o.image.exists() {
        return Err(Fail(format!(
            "cannot open image {}: No such file or directory",
            o.image.display()
        )));
    }
    let disk = Disk::attach(&o.image, d == Direction::FromFs).map_err(|e| Fail(e.to_string()))?;
    let boot = BootOptions {
        memory: KERNEL_MEM,
        console: if o.printk {
            Console::Stderr
        } else {
            Console::Silent
        },
        ..Default::default()
    };
    let kernel = Kernel::boot(boot).map_err(|e| Fail(e.to_string()))?;
    let result = copy_all(d, &o, &disk);
    let halted = disk::halt(kernel);
    let n = result?;
    halted.map_err(|e| Fail(format!("finishing {}: {e}", o.image.display())))?;
    Ok(n)
}

fn copy_all(d: Direction, o: &Options, disk: &Disk) -> Result<usize, Fail> {
    let mut opts = o.mount_opts.clone();
    // A corrupt image must not stop the kernel (errors=panic in the
    // superblock would): ext* remount read-only instead.
    if o.fstype.starts_with("ext") && !opts.contains("errors=") {
        if !opts.is_empty() {
            opts.push(',');
        }
        opts.push_str("errors=remount-ro");
    }
    if d == Direction::FromFs && !opts.split(',').any(|x| x == "ro") {
        if !opts.is_empty() {
            opts.push(',');
        }
        opts.push_str("ro");
    }
    disk.mount(o.partition, &o.fstype, MOUNT_POINT, &opts)
        .map_err(|e| Fail(e.to_string()))?;
    let image = Image {
        name: o.image.display().to_string(),
        selinux: o.selinux.clone(),
    };
    let host = Host;
    let (src, dst): (&dyn World, &dyn World) = match d {
        Direction::ToFs => (&host, &image),
        Direction::FromFs => (&image, &host),
    };
    let to_host = d == Direction::FromFs;
    let dest = tidy(absolute(&o.dest, to_host));
    let mut sources = Vec::new();
    for s in &o.sources {
        let p = tidy(absolute(s, !to_host));
        match expand(src, &p) {
            Ok(v) => sources.extend(v),
            Err(e) => return Err(Fail(e)),
        }
    }
    let dest_is_dir = dst.lstat(&dest).is_ok_and(|m| m.kind == Kind::Dir);
    let wants_dir = o.dest.as_bytes().ends_with(b"/") || sources.len() > 1;
    if wants_dir && !dest_is_dir {
        return Err(Fail(format!(
            "target {} is not a directory",
            dst.show(&dest)
        )));
    }
    let mut c = Copier {
        src,
        dst,
        prog: d.prog(),
        buf: Vec::new(),
        errors: 0,
        progress: Progress {
            enabled: o.verbose || io::stderr().is_terminal(),
            prog: d.prog(),
            start: Instant::now(),
            last: Instant::now(),
            bytes: 0,
            files: 0,
            shown: false,
        },
    };
    for s in &sources {
        let t = target_for(s, &dest, dest_is_dir);
        if c.copy(s, &t).is_err() {
            break;
        }
    }
    c.progress.done();
    Ok(c.errors)
}

/// Runs the tool; returns the process exit status.
pub fn main() -> i32 {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let d = if name.contains("cpfromfs") {
        Direction::FromFs
    } else {
        Direction::ToFs
    };
    let prog = d.prog();
    let opts = match parse_args(d, args.collect()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{}", usage(d));
            return 0;
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            return 2;
        }
    };
    match run(d, opts) {
        Ok(0) => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("{prog}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, n: &str| glob_match(p.as_bytes(), n.as_bytes());
        assert!(m("*", "abc"));
        assert!(!m("*", ".hidden"));
        assert!(m(".*", ".hidden"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("a?c", "abc"));
        assert!(m("*.txt", "x y.txt"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("f\\*", "f*"));
        assert!(!m("f\\*", "fa"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(m("é*", "école"));
    }

    #[test]
    fn dirents() {
        let mut buf = Vec::new();
        for name in [&b"."[..], b"..", b"hello", "é x".as_bytes()] {
            let reclen = (19 + name.len() + 1).next_multiple_of(8);
            let mut rec = vec![0u8; reclen];
            rec[16..18].copy_from_slice(&(reclen as u16).to_ne_bytes());
            rec[19..19 + name.len()].copy_from_slice(name);
            buf.extend(rec);
        }
        let mut out = Vec::new();
        parse_dirents(&buf, &mut out);
        assert_eq!(out, vec![OsString::from("hello"), OsString::from("é x")]);
    }

    #[test]
    fn args() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let o = parse_args(
            Direction::ToFs,
            a(&["-t", "ext4", "-i", "x.img", "-P", "2", "a", "b", "/"]),
        )
        .ok()
        .flatten()
        .unwrap();
        assert_eq!(o.partition, Some(2));
        assert_eq!(o.sources.len(), 2);
        assert!(parse_args(Direction::ToFs, a(&["--help"]))
            .ok()
            .unwrap()
            .is_none());
        assert!(parse_args(Direction::ToFs, a(&["-t", "ext4", "x", "y"])).is_err());
        assert!(parse_args(
            Direction::ToFs,
            a(&["-t", "ext4", "-i", "i", "-P", "x", "a", "b"])
        )
        .is_err());
    }
}
