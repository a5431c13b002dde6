//! fuse-bench: lklfuse next to fuse2fs on the same kind of ext4 image, in
//! the same run. Prints figures (sequential write and read MB/s, small-file
//! creates per second) and the ratios; it is not a pass/fail test.
//!
//! usage: fuse-bench [--mb N] [--files N] [--runs N] [--only TOOL] [--cold] [--dir DIR]
//!   --mb N       size of the sequential file (default 200)
//!   --files N    small files to create (default 2000, 4 KiB each)
//!   --runs N     rounds (default 5); each round measures both tools, in
//!                alternating order, so machine load hits both alike
//!   --only TOOL  measure only lklfuse or fuse2fs (for profiling)
//!   --cold       drop the image's pages from the host page cache
//!                (posix_fadvise DONTNEED) before the read
//!   --lklfuse-opts OPTS  extra `-o` options for lklfuse (experiments)
//!   --dir DIR    scratch directory (default /tmp)
//!
//! The tools are mounted as their users would (fuse2fs `-o rw`: libfuse 2,
//! no writeback cache, its own permission checks in the server, no
//! journal; lklfuse with its defaults: the host's writeback cache, our
//! kernel's permission checks, ext4's journal, files created write-only
//! around the host's page cache). A small-file create costs fuse2fs 5
//! requests (LOOKUP, CREATE, GETXATTR of security.capability at the first
//! write, WRITE, RELEASE) and lklfuse 4 (no GETXATTR; `--lklfuse-opts
//! create_direct=0` measures the cached create: 6, the same as fuse2fs plus
//! the SETATTR with which the host's writeback cache hands the times it
//! kept back at close). The host's load average is printed at the start and the
//! end: on a shared machine the create figures swing several times over
//! between rounds, take the medians.
//!
//! Each figure is taken on a fresh mount of a fresh image (same size, same
//! mkfs.ext4 defaults for both tools): write (ending with fsync), then
//! unmount and mount again so the read starts with cold FUSE and kernel
//! caches (the image file itself is in the host's page cache unless
//! --cold, for both alike). Prints every round, then the median and range
//! of each figure and the ratio of the medians.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Opts {
    mb: usize,
    files: usize,
    runs: usize,
    only: Option<&'static str>,
    cold: bool,
    /// Extra lklfuse -o options (experiments).
    lkl_opts: Option<String>,
    dir: PathBuf,
}

fn is_mounted(dir: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = dir.to_str().unwrap_or("");
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

fn check(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[derive(Clone, Copy)]
enum Tool {
    Lklfuse,
    Fuse2fs,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Lklfuse => "lklfuse",
            Tool::Fuse2fs => "fuse2fs",
        }
    }

    fn mount(self, image: &Path, mnt: &Path, o: &Opts) -> Result<Child, String> {
        let mut cmd = match self {
            Tool::Lklfuse => {
                let exe = std::env::current_exe()
                    .map_err(|e| e.to_string())?
                    .with_file_name("lklfuse");
                let mut c = Command::new(exe);
                c.arg(image).arg(mnt).args(["-f", "-o", "type=ext4"]);
                if let Some(extra) = &o.lkl_opts {
                    c.args(["-o", extra]);
                }
                c
            }
            Tool::Fuse2fs => {
                let mut c = Command::new("fuse2fs");
                c.arg(image).arg(mnt).args(["-f", "-o", "rw"]);
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.name()))?;
        let start = Instant::now();
        while !is_mounted(mnt) {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("{} exited before mounting: {st}", self.name()));
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                return Err(format!("{} did not mount", self.name()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(child)
    }
}

fn unmount(mnt: &Path, mut child: Child) -> Result<(), String> {
    check(Command::new("fusermount3").arg("-u").arg(mnt))?;
    let st = child.wait().map_err(|e| e.to_string())?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("server exited with {st}"))
    }
}

/// Drops the image's (clean) pages from the host page cache.
fn drop_host_cache(image: &Path) -> Result<(), String> {
    let f = fs::File::open(image).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    // SAFETY: a valid descriptor; the call only reads its arguments.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 {
        return Err(format!(
            "posix_fadvise: {}",
            std::io::Error::from_raw_os_error(r)
        ));
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Figures {
    write_mbs: f64,
    read_mbs: f64,
    creates: f64,
}

fn measure(tool: Tool, o: &Opts) -> Result<Figures, String> {
    let base = o
        .dir
        .join(format!("fuse-bench-{}-{}", tool.name(), std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(base.join("mnt")).map_err(|e| e.to_string())?;
    let mnt = base.join("mnt").canonicalize().map_err(|e| e.to_string())?;
    let image = base.join("fs.img");
    let size = (o.mb as u64 * 2 + 256) << 20;
    fs::File::create(&image)
        .and_then(|f| f.set_len(size))
        .map_err(|e| e.to_string())?;
    check(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))?;
    let result = (|| {
        let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();

        // Sequential write, ending with fsync.
        let child = tool.mount(&image, &mnt, o)?;
        let t = Instant::now();
        let mut f = fs::File::create(mnt.join("seq")).map_err(|e| e.to_string())?;
        for _ in 0..o.mb {
            f.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        f.sync_all().map_err(|e| e.to_string())?;
        drop(f);
        let write_mbs = o.mb as f64 / t.elapsed().as_secs_f64();
        unmount(&mnt, child)?;

        // Sequential read on a fresh mount.
        if o.cold {
            drop_host_cache(&image)?;
        }
        let child = tool.mount(&image, &mnt, o)?;
        let t = Instant::now();
        let mut f = fs::File::open(mnt.join("seq")).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            let n = f.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            total += n;
        }
        let read_mbs = (total >> 20) as f64 / t.elapsed().as_secs_f64();
        drop(f);
        if total != o.mb << 20 {
            return Err(format!("read {total} bytes, wrote {}", o.mb << 20));
        }

        // Small files: create, write 4 KiB, close.
        fs::create_dir(mnt.join("small")).map_err(|e| e.to_string())?;
        let t = Instant::now();
        for i in 0..o.files {
            fs::write(mnt.join(format!("small/f{i:06}")), &chunk[..4096])
                .map_err(|e| e.to_string())?;
        }
        let creates = o.files as f64 / t.elapsed().as_secs_f64();
        unmount(&mnt, child)?;
        check(Command::new("e2fsck").arg("-fn").arg(&image))?;
        Ok(Figures {
            write_mbs,
            read_mbs,
            creates,
        })
    })();
    if is_mounted(&mnt) {
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&mnt)
            .status();
    }
    let _ = fs::remove_dir_all(&base);
    result
}

const USAGE: &str =
    "usage: fuse-bench [--mb N] [--files N] [--runs N] [--only lklfuse|fuse2fs] [--cold] [--lklfuse-opts OPTS] [--dir DIR]";

/// The host's 1, 5 and 15 minute load averages, as /proc/loadavg says.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// (median, min, max) of `v` (not empty).
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

fn main() {
    let mut o = Opts {
        mb: 200,
        files: 2000,
        runs: 5,
        only: None,
        cold: false,
        lkl_opts: None,
        dir: std::env::temp_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |what: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("fuse-bench: {what} needs a value");
                std::process::exit(2)
            })
        };
        let num = |what: &str, v: String| -> usize {
            v.parse().unwrap_or_else(|_| {
                eprintln!("fuse-bench: {what} needs a number, got {v:?}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--mb" => o.mb = num("--mb", val("--mb")).max(1),
            "--files" => o.files = num("--files", val("--files")).max(1),
            "--runs" => o.runs = num("--runs", val("--runs")).max(1),
            "--only" => {
                o.only = match val("--only").as_str() {
                    "lklfuse" => Some("lklfuse"),
                    "fuse2fs" => Some("fuse2fs"),
                    other => {
                        eprintln!("fuse-bench: --only takes lklfuse or fuse2fs, not {other:?}");
                        std::process::exit(2)
                    }
                }
            }
            "--cold" => o.cold = true,
            "--lklfuse-opts" => o.lkl_opts = Some(val("--lklfuse-opts")),
            "--dir" => o.dir = PathBuf::from(val("--dir")),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("fuse-bench: unknown argument {other}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    println!(
        "ext4 image, {} MB sequential file (1 MiB writes, fsync), {} files of 4 KiB, {} rounds{}",
        o.mb,
        o.files,
        o.runs,
        if o.cold {
            ", cold host cache for reads"
        } else {
            ""
        }
    );
    println!("host load average: {}", load_average());
    let tools: Vec<Tool> = [Tool::Lklfuse, Tool::Fuse2fs]
        .into_iter()
        .filter(|t| o.only.is_none_or(|n| n == t.name()))
        .collect();
    let mut rows: Vec<Vec<Figures>> = vec![Vec::new(); tools.len()];
    for round in 0..o.runs {
        // Alternate which tool goes first.
        let mut order: Vec<usize> = (0..tools.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let tool = tools[i];
            match measure(tool, &o) {
                Ok(f) => {
                    println!(
                        "round {:2} {:8}  write {:8.1} MB/s  read {:8.1} MB/s  create {:8.0} files/s",
                        round + 1,
                        tool.name(),
                        f.write_mbs,
                        f.read_mbs,
                        f.creates
                    );
                    rows[i].push(f);
                }
                Err(e) => {
                    eprintln!("fuse-bench: {}: {e}", tool.name());
                    std::process::exit(1);
                }
            }
        }
    }
    println!("host load average: {}", load_average());
    let mut medians = Vec::new();
    for (tool, r) in tools.iter().zip(&rows) {
        let w = stats(r.iter().map(|f| f.write_mbs).collect());
        let rd = stats(r.iter().map(|f| f.read_mbs).collect());
        let c = stats(r.iter().map(|f| f.creates).collect());
        println!(
            "median {:8}  write {:7.1} MB/s ({:.0}-{:.0})  read {:7.1} MB/s ({:.0}-{:.0})  create {:6.0}/s ({:.0}-{:.0})",
            tool.name(),
            w.0,
            w.1,
            w.2,
            rd.0,
            rd.1,
            rd.2,
            c.0,
            c.1,
            c.2
        );
        medians.push((w.0, rd.0, c.0));
    }
    if let [l, f] = medians[..] {
        println!(
            "lklfuse / fuse2fs (medians): write {:.2}x  read {:.2}x  create {:.2}x  (target >= 1.5x)",
            l.0 / f.0,
            l.1 / f.1,
            l.2 / f.2
        );
    }
}
