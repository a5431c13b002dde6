//! fuse-bench: lklfuse next to fuse2fs on the same kind of ext4 image, in
//! the same run. Prints figures (sequential write and read MB/s, small-file
//! creates per second) and the ratios; it is not a pass/fail test.
//!
//! usage: fuse-bench [--mb N] [--files N] [--dir DIR]
//!   --mb N     size of the sequential file (default 200)
//!   --files N  small files to create (default 2000, 4 KiB each)
//!   --dir DIR  scratch directory (default /tmp)
//!
//! Each figure is taken on a fresh mount: write (ending with fsync), then
//! unmount and mount again so the read starts with cold FUSE and kernel
//! caches (the image file itself may be in the host's page cache, for
//! both alike).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Opts {
    mb: usize,
    files: usize,
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

    fn mount(self, image: &Path, mnt: &Path) -> Result<Child, String> {
        let mut cmd = match self {
            Tool::Lklfuse => {
                let exe = std::env::current_exe()
                    .map_err(|e| e.to_string())?
                    .with_file_name("lklfuse");
                let mut c = Command::new(exe);
                c.arg(image).arg(mnt).args(["-f", "-o", "type=ext4"]);
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
        let child = tool.mount(&image, &mnt)?;
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
        let child = tool.mount(&image, &mnt)?;
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

fn main() {
    let mut o = Opts {
        mb: 200,
        files: 2000,
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
        match a.as_str() {
            "--mb" => o.mb = val("--mb").parse().unwrap_or(200),
            "--files" => o.files = val("--files").parse().unwrap_or(2000),
            "--dir" => o.dir = PathBuf::from(val("--dir")),
            "-h" | "--help" => {
                println!("usage: fuse-bench [--mb N] [--files N] [--dir DIR]");
                return;
            }
            other => {
                eprintln!("fuse-bench: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    println!(
        "ext4 image, {} MB sequential file (1 MiB writes, fsync), {} files of 4 KiB",
        o.mb, o.files
    );
    let mut rows = Vec::new();
    for tool in [Tool::Lklfuse, Tool::Fuse2fs] {
        match measure(tool, &o) {
            Ok(f) => {
                println!(
                    "{:8}  write {:8.1} MB/s  read {:8.1} MB/s  create {:8.0} files/s",
                    tool.name(),
                    f.write_mbs,
                    f.read_mbs,
                    f.creates
                );
                rows.push(f);
            }
            Err(e) => {
                eprintln!("fuse-bench: {}: {e}", tool.name());
                std::process::exit(1);
            }
        }
    }
    let (l, f) = (&rows[0], &rows[1]);
    println!(
        "lklfuse / fuse2fs: write {:.2}x  read {:.2}x  create {:.2}x  (target >= 1.5x)",
        l.write_mbs / f.write_mbs,
        l.read_mbs / f.read_mbs,
        l.creates / f.creates
    );
}
