//! `disk-bench`: cptofs of a mixed tree (~200 MB) into an ext4 image next to
//! the host kernel writing the same tree to the same kind of image through
//! a loop mount (`mount -o loop`, `cp -a`, `umount`, `sync`), in the same
//! run. Prints figures; it is not a test. The host side needs root.
//!
//! `disk-bench [--mb N] [--rounds N] [--dir DIR]`

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Writes the tree; returns (bytes, files).
fn make_tree(root: &Path, scale: f64) -> (u64, u64) {
    let n = |k: f64| ((k * scale).round() as usize).max(1);
    let mut bytes = 0u64;
    let mut files = 0u64;
    let mut put = |p: PathBuf, len: usize, seed: u64| {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, pattern(len, seed)).unwrap();
        bytes += len as u64;
        files += 1;
    };
    for i in 0..n(2.0) {
        put(root.join(format!("big/file{i}.bin")), 50 << 20, i as u64);
    }
    for i in 0..n(30.0) {
        put(
            root.join(format!("medium/m{}/f{i}", i % 5)),
            2 << 20,
            100 + i as u64,
        );
    }
    for i in 0..n(2000.0) {
        put(
            root.join(format!("small/d{}/e{}/s{i}", i % 20, i % 7)),
            16 << 10,
            10_000 + i as u64,
        );
    }
    for i in 0..n(4000.0) {
        put(
            root.join(format!("tiny/d{}/t{i}.txt", i % 50)),
            2 << 10,
            100_000 + i as u64,
        );
    }
    (bytes, files)
}

fn sh(cmd: &str, args: &[&str]) -> Result<(), String> {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{cmd} {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(())
}

fn fresh_image(p: &Path, mb: u64) -> Result<(), String> {
    let _ = fs::remove_file(p);
    fs::File::create(p)
        .and_then(|f| f.set_len(mb << 20))
        .map_err(|e| format!("{}: {e}", p.display()))?;
    sh("mkfs.ext4", &["-qF", p.to_str().unwrap_or_default()])
}

fn main() {
    let mut mb = 200.0f64;
    let mut rounds = 3;
    let mut dir = std::env::temp_dir();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mb" => mb = args.next().and_then(|v| v.parse().ok()).unwrap_or(mb),
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(rounds),
            "--dir" => dir = args.next().map(PathBuf::from).unwrap_or(dir),
            "-h" | "--help" => {
                println!("usage: disk-bench [--mb N] [--rounds N] [--dir DIR]");
                return;
            }
            _ => {
                eprintln!("disk-bench: unknown argument {a}");
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = bench(mb, rounds, &dir) {
        eprintln!("disk-bench: {e}");
        std::process::exit(1);
    }
}

fn bench(mb: f64, rounds: usize, dir: &Path) -> Result<(), String> {
    let work = dir.join(format!("lkl-disk-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let tree = work.join("tree");
    let (bytes, files) = make_tree(&tree, mb / 200.0);
    let img_mb = (bytes >> 20) * 2 + 128;
    let cptofs = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("cptofs")))
        .filter(|p| p.exists())
        .ok_or("cptofs is not next to disk-bench (cargo build --release --bin cptofs)")?;
    let img = work.join("ext4.img");
    let mnt = work.join("mnt");
    fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    let root = running_as_root();
    println!(
        "tree: {:.1} MB in {files} files; ext4 image of {img_mb} MB in {}",
        bytes as f64 / 1e6,
        work.display()
    );
    let mut best_lkl = f64::MAX;
    let mut best_host = f64::MAX;
    let img_s = img.to_str().unwrap_or_default().to_owned();
    let mnt_s = mnt.to_str().unwrap_or_default().to_owned();
    let tree_s = tree.to_str().unwrap_or_default().to_owned();
    for r in 1..=rounds {
        fresh_image(&img, img_mb)?;
        let t = Instant::now();
        sh(
            cptofs.to_str().unwrap_or_default(),
            &["-t", "ext4", "-i", &img_s, &tree_s, "/"],
        )?;
        let lkl = t.elapsed().as_secs_f64();
        best_lkl = best_lkl.min(lkl);
        let host = if root {
            fresh_image(&img, img_mb)?;
            let t = Instant::now();
            sh("mount", &["-o", "loop", &img_s, &mnt_s])?;
            let copied = sh("cp", &["-a", &tree_s, &mnt_s]);
            let unmounted = sh("umount", &[&mnt_s]);
            copied?;
            unmounted?;
            sh("sync", &[&img_s])?;
            let h = t.elapsed().as_secs_f64();
            best_host = best_host.min(h);
            format!(
                "host loop mount {h:.2} s ({:.0} MB/s)",
                bytes as f64 / 1e6 / h
            )
        } else {
            "host loop mount skipped (needs root)".to_owned()
        };
        println!(
            "round {r}: cptofs {lkl:.2} s ({:.0} MB/s); {host}",
            bytes as f64 / 1e6 / lkl
        );
    }
    let lkl_mbs = bytes as f64 / 1e6 / best_lkl;
    if best_host < f64::MAX {
        let host_mbs = bytes as f64 / 1e6 / best_host;
        println!(
            "best: cptofs {lkl_mbs:.0} MB/s, host kernel {host_mbs:.0} MB/s, ratio {:.2} (target >= 0.5)",
            lkl_mbs / host_mbs
        );
    } else {
        println!("best: cptofs {lkl_mbs:.0} MB/s");
    }
    let _ = fs::remove_dir_all(&work);
    Ok(())
}

/// True when running as root (the loop mount needs it).
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
