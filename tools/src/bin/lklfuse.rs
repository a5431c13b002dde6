//! lklfuse: a file-system image mounted on the host through FUSE, served
//! by our kernel (its own ext4, vfat, xfs, btrfs drivers) inside this
//! process. No root needed for the image; FUSE mounting as usual.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fuser::{Config, MountOption, Session, SessionACL};
use lkl::disk::{self, Disk};
use lkl::{BootOptions, Kernel};
use lkl_tools::fuse::{FsOptions, KernelFs, Permissions};

const USAGE: &str = "\
usage: lklfuse IMAGE MOUNTPOINT -o type=FSTYPE[,OPTION...] [-f]

Mounts the file system in IMAGE at MOUNTPOINT through FUSE; the file system
is driven by the Linux kernel linked into lklfuse. Unmount with
`fusermount3 -u MOUNTPOINT` or by sending lklfuse SIGTERM or SIGINT: the
kernel then unmounts, flushes and the image is synced to the host disk.

LKL's options (-o, comma-separated, repeatable; same meaning as LKL's lklfuse):
  type=FSTYPE     file-system type: ext4, ext3, ext2, vfat, xfs, btrfs (required)
  ro              read-only (image opened read-only)
  part=N          use partition N (MBR or GPT); 0 = the whole image (the default)
  mb=N            kernel memory in MiB (default 256)
  opts=A:B:...    kernel mount options, colon-separated (e.g. opts=noatime:data=ordered)
  log=FILE        append the kernel's messages to FILE
LKL's flags:
  -h, --help      this text
  -V, --version   print the version
  -f              stay in the foreground (default: return once mounted)
  -s              serve requests on one thread (threads=1)
  -d              refused: libfuse's request trace does not exist here
Ours:
  threads=N       FUSE request threads (default 4)
  readahead=KB    host read-ahead window of the mount in KiB (default 4096;
                  set through sysfs, so only as root; 0 keeps the host's)
  allow_other     let other users reach the mount
  permissions=W   who checks permissions: kernel (ours, each request runs as
                  its caller with lklfuse's supplementary groups; the default
                  without allow_other) or host (FUSE's default_permissions;
                  the default with allow_other, whose callers' groups lklfuse
                  cannot know; default_permissions means host)
  nowriteback     no host write-back cache (every write goes to lklfuse)
  create_direct=B 1 (default): files created write-only bypass the host's
                  page cache (each write goes to lklfuse as it happens: one
                  wait less per small file); 0: cached like other files
  debug           show the kernel console on stderr";

/// What `-V` prints.
const VERSION: &str = concat!("lklfuse version ", env!("CARGO_PKG_VERSION"));

/// What the command line asks for.
enum Parsed {
    Run(Box<Args>),
    Help,
    Version,
}

#[derive(Debug)]
struct Args {
    image: PathBuf,
    mountpoint: PathBuf,
    fstype: String,
    read_only: bool,
    partition: Option<u32>,
    mem_mb: u64,
    kernel_opts: Vec<String>,
    threads: usize,
    readahead_kb: u64,
    allow_other: bool,
    /// `permissions=kernel|host`; None: kernel without `allow_other`.
    kernel_permissions: Option<bool>,
    writeback: bool,
    create_direct: bool,
    debug: bool,
    /// `log=FILE`: the kernel's messages go there.
    log: Option<PathBuf>,
    foreground: bool,
}

fn parse_args(argv: &[String]) -> Result<Parsed, String> {
    let mut positional = Vec::new();
    let mut opts: Vec<String> = Vec::new();
    let mut foreground = false;
    let mut single_thread = false;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "-f" => foreground = true,
            // FUSE's generic flags, as LKL's lklfuse takes them from libfuse.
            "-s" => single_thread = true,
            "-d" => {
                return Err("-d (libfuse's request trace) is not available here: \
                            -f stays in the foreground, -o debug shows the kernel's messages"
                    .into())
            }
            "-o" => opts.push(it.next().ok_or("-o needs a value")?.clone()),
            s if s.starts_with("-o") => opts.push(s[2..].to_owned()),
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown flag {s}")),
            _ => positional.push(a.clone()),
        }
    }
    let [image, mountpoint] = <[String; 2]>::try_from(positional)
        .map_err(|p| format!("expected IMAGE and MOUNTPOINT, got {} arguments", p.len()))?;
    let mut args = Args {
        image: image.into(),
        mountpoint: mountpoint.into(),
        fstype: String::new(),
        read_only: false,
        partition: None,
        mem_mb: 256,
        kernel_opts: Vec::new(),
        threads: 4,
        readahead_kb: DEFAULT_READAHEAD_KB,
        allow_other: false,
        kernel_permissions: None,
        writeback: true,
        create_direct: true,
        debug: false,
        log: None,
        foreground,
    };
    for opt in opts
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        let (key, val) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let num = |what: &str| -> Result<u64, String> {
            val.and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("option {what} needs a number, got {opt:?}"))
        };
        match key {
            "type" => args.fstype = val.unwrap_or("").to_owned(),
            "ro" => args.read_only = true,
            "rw" => args.read_only = false,
            "part" => {
                // LKL's 0: the whole disk, no partition table.
                let n = u32::try_from(num("part")?)
                    .map_err(|_| format!("option part needs a partition number, got {opt:?}"))?;
                args.partition = (n > 0).then_some(n);
            }
            "log" => match val.filter(|v| !v.is_empty()) {
                Some(v) => args.log = Some(PathBuf::from(v)),
                None => return Err("option log needs a file (log=FILE)".into()),
            },
            "mb" => args.mem_mb = num("mb")?,
            "threads" => args.threads = num("threads")?.clamp(1, 64) as usize,
            "readahead" => args.readahead_kb = num("readahead")?.min(1 << 20),
            "opts" => args.kernel_opts.extend(
                val.unwrap_or("")
                    .split(':')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            "allow_other" => args.allow_other = true,
            "permissions" => {
                args.kernel_permissions = match val {
                    Some("kernel") => Some(true),
                    Some("host") => Some(false),
                    _ => {
                        return Err(format!(
                            "option permissions takes kernel or host, got {opt:?}"
                        ))
                    }
                }
            }
            "nowriteback" => args.writeback = false,
            "create_direct" => {
                args.create_direct = match val {
                    Some("1") | None => true,
                    Some("0") => false,
                    _ => return Err(format!("option create_direct takes 0 or 1, got {opt:?}")),
                }
            }
            "debug" => args.debug = true,
            // Harmless FUSE/mount words some callers pass.
            // FUSE's word for the host's checks.
            "default_permissions" => args.kernel_permissions = Some(false),
            "rw_" | "dev" | "suid" => {}
            _ => return Err(format!("unknown option {opt:?}")),
        }
    }
    if args.fstype.is_empty() {
        return Err("-o type=FSTYPE is required (e.g. -o type=ext4)".into());
    }
    if args.mem_mb < 16 {
        return Err(format!(
            "mb={} is too little memory (16 at least)",
            args.mem_mb
        ));
    }
    if single_thread {
        args.threads = 1;
    }
    if args.debug && args.log.is_some() {
        return Err("debug (kernel messages on stderr) and log=FILE cannot both be given".into());
    }
    Ok(Parsed::Run(Box::new(args)))
}

/// Where the kernel's messages go: `log=FILE` (opened for appending
/// before the kernel boots, so a bad path is an error up front), stderr
/// with `debug`, or nowhere.
fn console(args: &Args) -> Result<lkl::host::Console, String> {
    if let Some(path) = &args.log {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("log file {}: {e}", path.display()))?;
        let file = std::sync::Mutex::new(file);
        // Runs on the kernel's print path: write and return, no kernel calls.
        let write = move |b: &[u8]| {
            if let Ok(mut f) = file.lock() {
                let _ = f.write_all(b);
            }
        };
        return Ok(lkl::host::Console::Callback(std::sync::Arc::new(write)));
    }
    Ok(if args.debug {
        lkl::host::Console::Stderr
    } else {
        lkl::host::Console::Silent
    })
}

/// Boots, mounts the image in the kernel, mounts FUSE; `ready` hears
/// "ok" or the error once the mount is there (or not). Returns when the
/// FUSE mount ends.
fn serve(args: &Args, ready: &mut dyn FnMut(Result<(), String>)) -> Result<(), String> {
    let md = std::fs::metadata(&args.mountpoint)
        .map_err(|e| format!("mount point {}: {e}", args.mountpoint.display()))?;
    if !md.is_dir() {
        return Err(format!(
            "mount point {} is not a directory",
            args.mountpoint.display()
        ));
    }
    if !args.image.exists() {
        return Err(format!("image {}: no such file", args.image.display()));
    }
    // Signals go to one waiting thread: block them before any thread starts.
    let signals = signals::block_term()?;
    let disk = Disk::attach(&args.image, args.read_only).map_err(|e| e.to_string())?;
    let console = console(args)?;
    let kernel = Kernel::boot(BootOptions {
        memory: args.mem_mb << 20,
        console,
        ..Default::default()
    })
    .map_err(|e| format!("kernel boot failed: {e}"))?;
    let mut kopts = args.kernel_opts.join(",");
    if args.read_only {
        kopts = if kopts.is_empty() {
            "ro".into()
        } else {
            format!("ro,{kopts}")
        };
    }
    let target = "/mnt";
    if let Err(e) = disk.mount(args.partition, &args.fstype, target, &kopts) {
        let _ = disk::halt(kernel);
        return Err(e.to_string());
    }
    let fs_permissions = permissions(args);
    let fs = KernelFs::new(
        target,
        FsOptions {
            read_only: args.read_only,
            writeback_cache: args.writeback,
            create_direct: args.create_direct,
            permissions: fs_permissions.clone(),
            ..Default::default()
        },
    );
    let mut fs = match fs {
        Ok(fs) => fs,
        Err(e) => {
            let _ = disk::halt(kernel);
            return Err(format!("cannot serve the mount: {e}"));
        }
    };
    if args.readahead_kb > 0 {
        // The mount point as the host's mountinfo shows it.
        let mnt = std::fs::canonicalize(&args.mountpoint).unwrap_or(args.mountpoint.clone());
        let kb = args.readahead_kb;
        fs.on_first_lookup(move || raise_host_readahead(&mnt, kb));
    }
    let mut mount_options = vec![
        MountOption::FSName(args.image.display().to_string()),
        MountOption::Subtype("lklfuse".into()),
        if args.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    if let Permissions::Host = fs_permissions {
        mount_options.push(MountOption::DefaultPermissions);
    }
    if args.fstype == "vfat" {
        mount_options.push(MountOption::NoDev);
    }
    let mut config = Config::default();
    config.mount_options = mount_options;
    config.acl = if args.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(args.threads);
    config.clone_fd = true;
    let invalidator = fs.invalidator();
    let mut session = match Session::new(fs, &args.mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            let _ = disk::halt(kernel);
            return Err(format!(
                "cannot mount FUSE at {}: {e}",
                args.mountpoint.display()
            ));
        }
    };
    invalidator.start(session.notifier());
    let unmounter = session.unmount_callable();
    signals::spawn_waiter(signals, unmounter, args.mountpoint.clone());
    ready(Ok(()));
    let served = session.run();
    let halted = disk::halt(kernel);
    served.map_err(|e| format!("FUSE session failed: {e}"))?;
    halted.map_err(|e| format!("cannot shut the disk down cleanly: {e}"))
}

/// Who checks permissions. Without `allow_other` the host lets in only
/// processes with our uid and gid, so our kernel can check them, running
/// each request as its caller with our supplementary groups; that saves the
/// host's `default_permissions` a GETATTR of the directory after each
/// create in it. With `allow_other` callers have groups we do not know:
/// the host checks (`default_permissions`). `permissions=` overrides both.
fn permissions(args: &Args) -> Permissions {
    if !args.kernel_permissions.unwrap_or(!args.allow_other) {
        return Permissions::Host;
    }
    Permissions::Kernel {
        groups: host_groups(),
    }
}

/// This process's supplementary groups on the host.
fn host_groups() -> Vec<u32> {
    // SAFETY: a count query (size 0, no buffer), then a fill of exactly
    // `n` entries of a buffer that long.
    unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        if n <= 0 {
            return Vec::new();
        }
        let mut v: Vec<libc::gid_t> = vec![0; n as usize];
        let got = libc::getgroups(n, v.as_mut_ptr());
        v.truncate(got.max(0) as usize);
        v
    }
}

/// Host read-ahead for the mount, KiB: the host's FUSE layer starts every
/// mount at 128 KiB (and INIT cannot raise it), so a sequential reader
/// sees 128 KiB READ requests; a larger window keeps several 1 MiB
/// requests in flight.
const DEFAULT_READAHEAD_KB: u64 = 4096;

/// Sets the FUSE mount's read-ahead window (`/sys/class/bdi/MAJ:MIN/
/// read_ahead_kb`, the numbers from our entry in mountinfo, looked up
/// without touching the mount). Called in the first LOOKUP: after INIT
/// (which would cap it at the 128 KiB the host offers) and before any file
/// is opened (a file takes the window at open). Needs root: without it, or
/// on any error, the host's default stays.
fn raise_host_readahead(mountpoint: &Path, kb: u64) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let want = mountpoint.as_os_str().to_string_lossy();
    // Fields: id parent MAJ:MIN root mountpoint ... - fstype source ...;
    // mountinfo escapes space, tab, newline and backslash as octal.
    let dev = mountinfo.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let fstype = f.iter().skip_while(|x| **x != "-").nth(1)?;
        (f.get(4).map(|m| unescape_mountinfo(m)).as_deref() == Some(&*want)
            && fstype.starts_with("fuse"))
        .then(|| f[2].to_owned())
    });
    if let Some(dev) = dev {
        let _ = std::fs::write(
            format!("/sys/class/bdi/{dev}/read_ahead_kb"),
            kb.to_string(),
        );
    }
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

mod signals {
    //! SIGTERM, SIGINT and SIGHUP, taken by one thread with sigwait (no
    //! handler runs in signal context), unmount the FUSE mount.

    use std::path::PathBuf;

    use fuser::SessionUnmounter;

    pub struct Blocked(libc::sigset_t);

    pub fn block_term() -> Result<Blocked, String> {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset fill it and
        // pthread_sigmask only reads it. Called before other threads exist,
        // so every later thread inherits the mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err("cannot block signals".into());
            }
            Ok(Blocked(set))
        }
    }

    pub fn spawn_waiter(set: Blocked, mut unmounter: SessionUnmounter, mountpoint: PathBuf) {
        std::thread::spawn(move || {
            let mut sig = 0;
            // SAFETY: `set` is an initialised sigset; `sig` receives the number.
            let r = unsafe { libc::sigwait(&set.0, &mut sig) };
            if r != 0 {
                return;
            }
            if let Err(e) = unmounter.unmount() {
                eprintln!(
                    "lklfuse: unmounting {} failed ({e}); detaching it",
                    mountpoint.display()
                );
                if let Ok(c) = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes()) {
                    // SAFETY: a NUL-terminated path.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        });
    }

    /// Starts a new session (the daemon leaves its caller's terminal).
    pub fn setsid() {
        // SAFETY: no arguments; fails harmlessly if already a leader.
        unsafe { libc::setsid() };
    }

    /// fork(2) while the process has one thread.
    pub fn fork() -> Result<bool, String> {
        // SAFETY: called first thing in main, before any thread exists, so
        // the child is a complete copy.
        match unsafe { libc::fork() } {
            -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => Ok(true),
            _ => Ok(false),
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("{VERSION}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("lklfuse: {e}\n(try lklfuse --help)");
            return ExitCode::from(2);
        }
    };
    if args.foreground {
        let mut ready = |_: Result<(), String>| {};
        return match serve(&args, &mut ready) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lklfuse: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Background: the child serves; the parent waits for "mounted" or the
    // error, so the caller's exit status means something.
    let (mut parent_end, child_end) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lklfuse: socketpair: {e}");
            return ExitCode::FAILURE;
        }
    };
    match signals::fork() {
        Err(e) => {
            eprintln!("lklfuse: {e}");
            ExitCode::FAILURE
        }
        Ok(false) => {
            drop(child_end);
            let mut msg = String::new();
            let _ = parent_end.read_to_string(&mut msg);
            match msg.strip_prefix("ok") {
                Some(_) => ExitCode::SUCCESS,
                None if msg.is_empty() => {
                    eprintln!("lklfuse: the server exited before mounting");
                    ExitCode::FAILURE
                }
                None => {
                    eprintln!("lklfuse: {msg}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(true) => {
            drop(parent_end);
            signals::setsid();
            let mut chan = Some(child_end);
            let told = std::cell::Cell::new(false);
            let mut ready = |r: Result<(), String>| {
                if let Some(mut c) = chan.take() {
                    told.set(true);
                    let _ = match r {
                        Ok(()) => c.write_all(b"ok"),
                        Err(e) => c.write_all(e.as_bytes()),
                    };
                }
            };
            match serve(&args, &mut ready) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Before mounting the parent prints it (once); after,
                    // the parent is gone and this process says it.
                    let told_before = told.get();
                    ready(Err(e.clone()));
                    if told_before {
                        eprintln!("lklfuse: {e}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Args>, String> {
        match parse_args(&s.split_whitespace().map(String::from).collect::<Vec<_>>())? {
            Parsed::Run(a) => Ok(Some(*a)),
            _ => Ok(None),
        }
    }

    #[test]
    fn options() {
        let a = args("img mnt -o type=ext4,ro,part=2,mb=64,opts=noatime:data=ordered -f")
            .unwrap()
            .unwrap();
        assert_eq!(a.fstype, "ext4");
        assert!(a.read_only && a.foreground);
        assert_eq!(a.partition, Some(2));
        assert_eq!(a.mem_mb, 64);
        assert_eq!(a.kernel_opts, ["noatime", "data=ordered"]);
        assert!(args("img mnt").unwrap_err().contains("type="));
        assert!(args("img -o type=ext4").unwrap_err().contains("MOUNTPOINT"));
        assert!(args("img mnt -o type=ext4,bogus")
            .unwrap_err()
            .contains("bogus"));
        assert!(args("img mnt -o type=ext4,mb=x")
            .unwrap_err()
            .contains("number"));
        assert!(args("--help").unwrap().is_none());
        let a = args("img mnt -o type=ext4,part=0,log=/tmp/k.log")
            .unwrap()
            .unwrap();
        assert_eq!(a.partition, None);
        assert_eq!(a.log.as_deref(), Some(Path::new("/tmp/k.log")));
        assert!(args("img mnt -o type=ext4,log=")
            .unwrap_err()
            .contains("log"));
        assert!(args("img mnt -o type=ext4,log=x,debug").is_err());
        assert_eq!(
            args("img mnt -s -o type=ext4,threads=8")
                .unwrap()
                .unwrap()
                .threads,
            1
        );
        assert!(args("img mnt -d -o type=ext4").unwrap_err().contains("-d"));
        let direct = |s: &str| args(s).unwrap().unwrap().create_direct;
        assert!(direct("img mnt -o type=ext4"));
        assert!(direct("img mnt -o type=ext4,create_direct=1"));
        assert!(!direct("img mnt -o type=ext4,create_direct=0"));
        assert!(args("img mnt -o type=ext4,create_direct=yes")
            .unwrap_err()
            .contains("create_direct"));
        let kernel = |s: &str| {
            matches!(
                permissions(&args(s).unwrap().unwrap()),
                Permissions::Kernel { .. }
            )
        };
        assert!(kernel("img mnt -o type=ext4"));
        assert!(!kernel("img mnt -o type=ext4,allow_other"));
        assert!(kernel(
            "img mnt -o type=ext4,allow_other,permissions=kernel"
        ));
        assert!(!kernel("img mnt -o type=ext4,permissions=host"));
        assert!(!kernel("img mnt -o type=ext4,default_permissions"));
        assert!(args("img mnt -o type=ext4,permissions=x")
            .unwrap_err()
            .contains("permissions"));
        assert!(matches!(
            parse_args(&["-V".to_string()]),
            Ok(Parsed::Version)
        ));
    }
}
