//! Generates, from the kernel our build made, the renamed UAPI headers
//! and the `lkl_sys_*` wrappers (`gen-headers.py`; installed by
//! `bin/setup.sh --prefix`, generated here so every build checks the
//! generator) and the errno table `lkl_strerror` uses. Names the shared
//! object `liblkl.so` (its soname), the name it is installed under.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let here =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for var in ["LKL_CONFIG", "LKL_CACHE_DIR", "XDG_CACHE_HOME"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=gen-headers.py");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblkl.so");

    let config = env::var("LKL_CONFIG").unwrap_or_else(|_| "defconfig".into());
    let cache = env::var("LKL_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            env::var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|_| {
                    PathBuf::from(env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache")
                })
                .join("lkl-hijack")
        });
    let build = cache.join("build").join(&config);
    let uapi = build.join("usr/include");
    println!("cargo:rerun-if-changed={}", uapi.display());
    // The kernel object may come from the cache while its build tree is
    // gone: kernel/build.sh (incremental) puts the headers back.
    if !uapi.join("linux/types.h").exists() {
        let status = Command::new("bash")
            .arg(here.join("../kernel/build.sh"))
            .args(["--config", &config])
            .stdout(std::process::Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            fail("no kernel headers and kernel/build.sh failed (its messages are above)");
        }
    }
    // kernel/build.sh holds this lock while Kbuild rewrites usr/include.
    let mut cmd = Command::new("flock");
    cmd.arg(cache.join(".lock"));
    if Command::new("flock").arg("--version").output().is_err() {
        cmd = Command::new("python3");
    } else {
        cmd.arg("python3");
    }
    let status = cmd
        .arg(here.join("gen-headers.py"))
        .arg(&uapi)
        .arg(build.join("source"))
        .arg(out.join("include"))
        .arg(out.join("errno.rs"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(_) => fail("capi/gen-headers.py failed (its message is above)"),
        Err(e) => fail(&format!(
            "cannot run python3 capi/gen-headers.py: {e} (apt-get install python3)"
        )),
    }
    // The install step (bin/setup.sh --prefix) takes the headers that go
    // with this build from the profile directory, next to the library.
    if let Some(profile) = out.ancestors().nth(3) {
        let dest = profile.join("lkl-capi-include");
        let _ = std::fs::remove_dir_all(&dest);
        if let Err(e) = copy_tree(&out.join("include"), &dest) {
            fail(&format!(
                "cannot copy the headers to {}: {e}",
                dest.display()
            ));
        }
        // The kernel release, for lkl.pc's Version.
        let release = std::fs::read_to_string(build.join("include/config/kernel.release"))
            .unwrap_or_default();
        let _ = std::fs::write(dest.join("VERSION"), release.trim());
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn fail(msg: &str) -> ! {
    eprintln!("error: lkl-capi: {msg}");
    std::process::exit(1);
}
