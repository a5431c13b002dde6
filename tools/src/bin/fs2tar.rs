//! fs2tar: a file-system image written out as a tar archive, read by our
//! kernel's own file-system drivers (no root, no loop device).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lkl::disk::{self, Disk};
use lkl::syscall::{self as sys, abi, Errno};
use lkl::{BootOptions, Kernel};
use tar::{Builder, EntryType, Header};

const USAGE: &str = "\
usage: fs2tar -t FSTYPE [-P PART] [-p] [-s FILE] IMAGE TARFILE

Writes every file of the file system in IMAGE to the tar archive TARFILE
(`-` for standard output): regular files, directories, symlinks, hard links,
device nodes and FIFOs with their modes, owners and modification times, and
extended attributes as PAX records (SCHILY.xattr.*, as GNU tar --xattrs
reads them). The image is opened read-only.

LKL's flags (same letters, same meaning as LKL's fs2tar):
  -t, --filesystem-type FSTYPE   file-system type: ext4, ext3, ext2, vfat, xfs, btrfs
  -p, --enable-printk            show the kernel's messages on stderr
  -s, --selinux-contexts FILE    also write each file's SELinux context to FILE,
                                 one `/PATH CONTEXT` line per labelled file
Ours:
  -P, --partition PART           read partition PART (MBR or GPT); 0 = the whole image
  -h, --help                     this text";

const ROOT: &str = "/mnt";

struct Args {
    fstype: String,
    image: PathBuf,
    tarfile: String,
    /// `None` is the whole disk (`-P 0`, or no `-P`).
    partition: Option<u32>,
    printk: bool,
    selinux_file: Option<PathBuf>,
}

fn parse_args(argv: &[String]) -> Result<Option<Args>, String> {
    let mut fstype = None;
    let mut partition = None;
    let mut printk = false;
    let mut selinux_file = None;
    let mut positional = Vec::new();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "-t" | "--filesystem-type" => {
                fstype = Some(it.next().ok_or("-t needs a file-system type")?.clone())
            }
            "-p" | "--enable-printk" => printk = true,
            "-s" | "--selinux-contexts" => {
                selinux_file = Some(PathBuf::from(
                    it.next()
                        .ok_or("-s needs a file to write the contexts to")?,
                ))
            }
            "-P" | "--partition" => {
                let v = it.next().ok_or("-P needs a partition number")?;
                let n = v.parse::<u32>().map_err(|_| {
                    format!("-P needs a partition number (0 = the whole image), got {v:?}")
                })?;
                // LKL's 0: the whole disk, no partition table.
                partition = (n > 0).then_some(n);
            }
            "-" => positional.push(a.clone()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}")),
            _ => positional.push(a.clone()),
        }
    }
    let fstype = fstype.ok_or("-t FSTYPE is required (e.g. -t ext4)")?;
    let [image, tarfile] = <[String; 2]>::try_from(positional)
        .map_err(|p| format!("expected IMAGE and TARFILE, got {} arguments", p.len()))?;
    Ok(Some(Args {
        fstype,
        image: image.into(),
        tarfile,
        partition,
        printk,
        selinux_file,
    }))
}

/// Reads a kernel file through the `Read` trait.
struct KernelReader(i32);

impl Read for KernelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(self.0, buf).map_err(io::Error::from)
    }
}

/// A kernel descriptor closed on drop.
struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = sys::close(self.0);
    }
}

fn kerr(what: &Path, e: Errno) -> String {
    format!("{}: {e}", what.display())
}

struct Archiver<W: Write> {
    tar: Builder<W>,
    /// (st_ino) of files with several links -> the first archived name.
    links: HashMap<u64, PathBuf>,
    files: u64,
    bytes: u64,
    started: Instant,
    last_progress: Instant,
    /// `-s FILE`: where each file's SELinux context goes.
    selinux: Option<io::BufWriter<std::fs::File>>,
}

fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

impl<W: Write> Archiver<W> {
    fn progress(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.started) > Duration::from_secs(2)
            && now.duration_since(self.last_progress) > Duration::from_secs(2)
        {
            self.last_progress = now;
            eprintln!(
                "fs2tar: {} files, {} MB so far",
                self.files,
                self.bytes >> 20
            );
        }
    }

    /// PAX records of `kpath`'s extended attributes (not following links).
    fn xattrs(&mut self, kpath: &OsStr, rel: &Path) -> Result<(), String> {
        let names = match sys::llistxattr(kpath) {
            Ok(n) => n,
            Err(Errno::EOPNOTSUPP) => return Ok(()),
            Err(e) => return Err(kerr(rel, e)),
        };
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        for name in names {
            match sys::lgetxattr(kpath, &name) {
                Ok(v) if name == "security.selinux" && self.selinux.is_some() => {
                    if let Some(w) = self.selinux.as_mut() {
                        let ctx = v.strip_suffix(&[0]).unwrap_or(&v);
                        let mut line = b"/".to_vec();
                        line.extend_from_slice(rel.as_os_str().as_bytes());
                        line.push(b' ');
                        line.extend_from_slice(ctx);
                        line.push(b'\n');
                        w.write_all(&line)
                            .map_err(|e| format!("writing the SELinux contexts: {e}"))?;
                    }
                    records.push((format!("SCHILY.xattr.{}", name.to_string_lossy()), v));
                }
                Ok(v) => records.push((format!("SCHILY.xattr.{}", name.to_string_lossy()), v)),
                Err(Errno(61)) => {} // ENODATA: removed meanwhile
                Err(e) => return Err(format!("{}: xattr {name:?}: {e}", rel.display())),
            }
        }
        if !records.is_empty() {
            self.tar
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| format!("writing the archive: {e}"))?;
        }
        Ok(())
    }

    fn entry(&mut self, dirfd: i32, name: &OsStr, kpath: &OsStr, rel: &Path) -> Result<(), String> {
        let st = sys::fstatat(dirfd, name, abi::AT_SYMLINK_NOFOLLOW).map_err(|e| kerr(rel, e))?;
        let kind = st.st_mode & abi::S_IFMT;
        let mut h = Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        let werr = |e: io::Error| format!("writing the archive ({}): {e}", rel.display());
        if kind != abi::S_IFDIR && st.st_nlink > 1 {
            if let Some(first) = self.links.get(&st.st_ino) {
                let first = first.clone();
                h.set_entry_type(EntryType::Link);
                return self.tar.append_link(&mut h, rel, first).map_err(werr);
            }
            self.links.insert(st.st_ino, rel.to_path_buf());
        }
        if kind != abi::S_IFSOCK {
            self.xattrs(kpath, rel)?;
        }
        self.files += 1;
        match kind {
            abi::S_IFREG => {
                let fd = sys::openat(
                    dirfd,
                    name,
                    abi::O_RDONLY | abi::O_NOFOLLOW | abi::O_CLOEXEC,
                    0,
                )
                .map_err(|e| kerr(rel, e))?;
                let fd = Fd(fd);
                h.set_entry_type(EntryType::Regular);
                h.set_size(st.st_size as u64);
                // A file that changed size under us would corrupt the
                // archive: read exactly st_size bytes or fail.
                let mut data = KernelReader(fd.0).take(st.st_size as u64);
                let mut counted = CountingReader {
                    inner: &mut data,
                    n: 0,
                };
                self.tar
                    .append_data(&mut h, rel, &mut counted)
                    .map_err(werr)?;
                if counted.n != st.st_size as u64 {
                    return Err(format!("{}: file shrank while reading", rel.display()));
                }
                self.bytes += counted.n;
            }
            abi::S_IFDIR => {
                h.set_entry_type(EntryType::Directory);
                // Directory names end in '/', as GNU tar writes them.
                let mut dname = rel.as_os_str().to_os_string();
                dname.push("/");
                self.tar
                    .append_data(&mut h, Path::new(&dname), io::empty())
                    .map_err(werr)?;
                let fd = sys::openat(
                    dirfd,
                    name,
                    abi::O_RDONLY | abi::O_DIRECTORY | abi::O_NOFOLLOW | abi::O_CLOEXEC,
                    0,
                )
                .map_err(|e| kerr(rel, e))?;
                let fd = Fd(fd);
                self.dir(fd.0, kpath, rel)?;
            }
            abi::S_IFLNK => {
                let target = sys::readlinkat(dirfd, name).map_err(|e| kerr(rel, e))?;
                h.set_entry_type(EntryType::Symlink);
                self.tar.append_link(&mut h, rel, target).map_err(werr)?;
            }
            abi::S_IFCHR | abi::S_IFBLK | abi::S_IFIFO => {
                h.set_entry_type(match kind {
                    abi::S_IFCHR => EntryType::Char,
                    abi::S_IFBLK => EntryType::Block,
                    _ => EntryType::Fifo,
                });
                if kind != abi::S_IFIFO {
                    h.set_device_major(major(st.st_rdev)).map_err(werr)?;
                    h.set_device_minor(minor(st.st_rdev)).map_err(werr)?;
                }
                self.tar
                    .append_data(&mut h, rel, io::empty())
                    .map_err(werr)?;
            }
            _ => {
                eprintln!(
                    "fs2tar: {}: a socket, left out (tar cannot hold one)",
                    rel.display()
                );
                self.files -= 1;
            }
        }
        self.progress();
        Ok(())
    }

    fn dir(&mut self, fd: i32, kpath: &OsStr, rel: &Path) -> Result<(), String> {
        let mut entries = sys::read_dir_fd(fd).map_err(|e| kerr(rel, e))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            if e.name == "." || e.name == ".." {
                continue;
            }
            let mut child_k = kpath.to_os_string().into_vec();
            child_k.push(b'/');
            child_k.extend_from_slice(e.name.as_bytes());
            let child_k = OsString::from_vec(child_k);
            let child_rel = rel.join(&e.name);
            self.entry(fd, &e.name, &child_k, &child_rel)?;
        }
        Ok(())
    }
}

struct CountingReader<'a, R: Read> {
    inner: &'a mut R,
    n: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

fn archive<W: Write>(
    out: W,
    selinux: Option<io::BufWriter<std::fs::File>>,
) -> Result<(u64, u64), String> {
    let mut a = Archiver {
        selinux,
        tar: Builder::new(out),
        links: HashMap::new(),
        files: 0,
        bytes: 0,
        started: Instant::now(),
        last_progress: Instant::now(),
    };
    let root = sys::open(ROOT, abi::O_RDONLY | abi::O_DIRECTORY | abi::O_CLOEXEC, 0)
        .map_err(|e| format!("the mounted file system: {e}"))?;
    let root = Fd(root);
    a.dir(root.0, OsStr::new(ROOT), Path::new(""))?;
    a.tar
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| format!("writing the archive: {e}"))?;
    if let Some(mut w) = a.selinux.take() {
        w.flush()
            .map_err(|e| format!("writing the SELinux contexts: {e}"))?;
    }
    Ok((a.files, a.bytes))
}

fn run(args: &Args) -> Result<(), String> {
    if !args.image.exists() {
        return Err(format!("image {}: no such file", args.image.display()));
    }
    // Made before the kernel boots, as LKL does: a bad path fails first.
    let selinux = match &args.selinux_file {
        Some(p) => Some(io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| {
                format!(
                    "cannot create the SELinux contexts file {}: {e}",
                    p.display()
                )
            },
        )?)),
        None => None,
    };
    let disk = Disk::attach(&args.image, true).map_err(|e| e.to_string())?;
    let kernel = Kernel::boot(BootOptions {
        memory: 128 << 20,
        console: if args.printk {
            lkl::host::Console::Stderr
        } else {
            lkl::host::Console::Silent
        },
        ..Default::default()
    })
    .map_err(|e| format!("kernel boot failed: {e}"))?;
    if let Err(e) = disk.mount(args.partition, &args.fstype, ROOT, "ro") {
        let _ = disk::halt(kernel);
        return Err(e.to_string());
    }
    let result = if args.tarfile == "-" {
        archive(
            io::BufWriter::with_capacity(1 << 20, io::stdout().lock()),
            selinux,
        )
    } else {
        let file = std::fs::File::create(&args.tarfile)
            .map_err(|e| format!("cannot create {}: {e}", args.tarfile));
        match file {
            Ok(f) => {
                let r = archive(io::BufWriter::with_capacity(1 << 20, f), selinux);
                if r.is_err() {
                    let _ = std::fs::remove_file(&args.tarfile);
                }
                r
            }
            Err(e) => Err(e),
        }
    };
    let halted = disk::halt(kernel);
    result?;
    halted.map_err(|e| format!("shutting the kernel down: {e}"))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fs2tar: {e}\n(try fs2tar --help)");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fs2tar: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Args>, String> {
        parse_args(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn arguments() {
        let a = args("-t ext4 img out.tar -P 2").unwrap().unwrap();
        assert_eq!((a.fstype.as_str(), a.partition), ("ext4", Some(2)));
        assert_eq!(a.tarfile, "out.tar");
        assert!(args("img out.tar").is_err());
        assert!(args("-t ext4 img").is_err());
        assert!(args("-t ext4 img o -P x").is_err());
        let a = args("-p -s ctx.txt -t ext4 -P 0 img o").unwrap().unwrap();
        assert!(a.printk && a.partition.is_none());
        assert_eq!(a.selinux_file.as_deref(), Some(Path::new("ctx.txt")));
        assert!(args("-t ext4 img o -s").is_err());
        assert!(args("--help").unwrap().is_none());
    }

    #[test]
    fn device_numbers() {
        let dev = (8u64 << 8) | 1; // 8:1
        assert_eq!((major(dev), minor(dev)), (8, 1));
        let big = ((0x123u64 & 0xfff) << 8) | ((0x45678u64 & !0xff) << 12) | 0x78;
        assert_eq!((major(big), minor(big)), (0x123, 0x45678));
    }
}
