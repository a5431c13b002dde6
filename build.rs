//! Builds the kernel library object (kernel/build.sh) unless a build of the
//! same inputs is cached, and links it into the `lkl` crate.
//!
//! The cache lives outside `target/` (`$LKL_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/lkl-hijack`, else `~/.cache/lkl-hijack`), keyed by a
//! hash of everything under `kernel/`, the config name and the Linux source
//! it was built from, so a fresh clone on the same machine reuses it.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=kernel");
    for var in [
        "LKL_CONFIG",
        "LKL_CACHE_DIR",
        "LKL_LINUX_SRC",
        "LKL_LINUX_TARBALL",
        "XDG_CACHE_HOME",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let config = env::var("LKL_CONFIG").unwrap_or_else(|_| "defconfig".into());
    let cache = cache_dir();
    let key = input_hash(&root.join("kernel"), &config);
    let built = cache.join("out").join(format!("{config}-{key}"));

    if !built.join("lkl.o").exists() {
        let status = Command::new("bash")
            .arg(root.join("kernel/build.sh"))
            .args(["--config", &config, "--out"])
            .arg(&built)
            .stdout(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(_) => fail("the kernel build failed (its messages are above; run kernel/build.sh to see it build)"),
            Err(e) => fail(&format!("cannot run kernel/build.sh: {e}")),
        }
    }

    let version = fs::read_to_string(built.join("kernel.version")).unwrap_or_default();
    println!("cargo:rustc-env=LKL_KERNEL_VERSION={}", version.trim());
    println!(
        "cargo:rustc-env=LKL_KERNEL_OBJECT={}",
        built.join("lkl.o").display()
    );

    // A static archive bundles into the rlib; whole-archive keeps every
    // section (initcall and parameter tables are reached only by symbols
    // the linker script defines).
    let archive = out_dir.join("liblkl_kernel.a");
    let _ = fs::remove_file(&archive);
    let ar = Command::new("ar")
        .arg("crs")
        .arg(&archive)
        .arg(built.join("lkl.o"))
        .status();
    if !matches!(ar, Ok(s) if s.success()) {
        fail("cannot archive lkl.o: is binutils ('ar') installed? apt-get install binutils");
    }
    println!("cargo:rustc-link-search=native={}", out_dir.display());
    println!("cargo:rustc-link-lib=static:+whole-archive=lkl_kernel");

    let unistd = fs::read_to_string(built.join("unistd_64.h"))
        .unwrap_or_else(|e| fail(&format!("no unistd_64.h from the kernel build: {e}")));
    fs::write(out_dir.join("syscall_nr.rs"), syscall_numbers(&unistd))
        .unwrap_or_else(|e| fail(&format!("cannot write syscall_nr.rs: {e}")));
}

fn fail(msg: &str) -> ! {
    eprintln!("error: lkl kernel: {msg}");
    std::process::exit(1);
}

fn cache_dir() -> PathBuf {
    if let Ok(dir) = env::var("LKL_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache")
        });
    base.join("lkl-hijack")
}

/// Hash of the build inputs: every file under kernel/ (path and content),
/// the config name, the Linux source's identity and the compiler.
fn input_hash(kernel: &Path, config: &str) -> String {
    let mut files = Vec::new();
    collect(kernel, &mut files);
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        h.update(
            f.strip_prefix(kernel)
                .unwrap_or(f)
                .to_string_lossy()
                .as_bytes(),
        );
        h.update([0]);
        h.update(fs::read(f).unwrap_or_default());
        h.update([0]);
    }
    h.update(config.as_bytes());
    let source = match env::var("LKL_LINUX_SRC") {
        Ok(src) => fs::read(Path::new(&src).join("Makefile")).unwrap_or_default(),
        Err(_) => {
            let tarball = env::var("LKL_LINUX_TARBALL")
                .unwrap_or_else(|_| "/usr/src/linux-source-6.12.tar.xz".into());
            let meta = fs::metadata(&tarball).ok();
            let stamp = meta
                .map(|m| format!("{}-{:?}", m.len(), m.modified().ok()))
                .unwrap_or_default();
            stamp.into_bytes()
        }
    };
    h.update(source);
    if let Ok(out) = Command::new("gcc").arg("--version").output() {
        h.update(out.stdout);
    }
    let digest = h.finalize();
    let mut s = String::new();
    for b in &digest[..12] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// `#define __NR_name N` lines become `pub const NAME: i64 = N;`.
fn syscall_numbers(header: &str) -> String {
    let mut out = String::from("// Generated by build.rs from the kernel's unistd_64.h.\n");
    for line in header.lines() {
        let mut it = line.split_whitespace();
        if it.next() != Some("#define") {
            continue;
        }
        let (Some(name), Some(value)) = (it.next(), it.next()) else {
            continue;
        };
        let Some(name) = name.strip_prefix("__NR_") else {
            continue;
        };
        if value.parse::<i64>().is_err() {
            continue;
        }
        let _ = writeln!(out, "pub const {}: i64 = {};", name.to_uppercase(), value);
    }
    out
}
