//! `cptofs` / `cpfromfs`: copy files into or out of a file-system image,
//! like `cp -a`, with the image mounted in a Linux kernel inside this
//! process (no root, no loop device). One implementation; the mode comes
//! from the program's name.
//!
//! Both sides are a [`World`] (the host's file system, or the image as the
//! kernel sees it), so one copy routine serves both directions: regular
//! files, directories (recursively), symlinks, device nodes and FIFOs, with
//! owner, mode and timestamps (set last, directories after their contents).
//!
//! The parts: `args` (the command line), `world` (what both sides offer),
//! `host` and `image` (the two worlds), `glob` (a pattern in a source's
//! last component), `copy` (the copy routine and its progress line).

mod args;
mod copy;
mod glob;
mod host;
mod image;
mod world;

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, IsTerminal};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lkl::disk::{self, Disk};
use lkl::host::Console;
use lkl::{BootOptions, Kernel};

use args::{parse_args, usage, Options};
use copy::{Copier, Progress};
use glob::expand;
use host::Host;
use image::Image;
use world::{Kind, World};

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

/// A one-line error for the user.
struct Fail(String);

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
        memory: o.mem_mb.map_or(KERNEL_MEM, |mb| mb << 20),
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
        owner: o.owner,
        group: o.group,
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
