//! Probes every prerequisite testkit-probe knows and writes the answers to
//! `$OUT_DIR/probed.rs` for the `needs` attribute. Cargo reruns this when
//! `CI`, `PATH`, ... change or when the package database, the loader's
//! cache, /dev/net/tun, /dev/fuse or the kernel config change (see
//! testkit_probe::ENV and watched_files); docs/testing.md says how to
//! force it (`cargo clean -p testkit-needs`).

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in testkit_probe::ENV {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for file in testkit_probe::watched_files() {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut out = String::new();
    let _ = writeln!(out, "const CI: bool = {};", testkit_probe::ci());
    out.push_str("const PROBED: &[(&str, Option<&str>)] = &[\n");
    for need in testkit_probe::NEEDS {
        let _ = writeln!(
            out,
            "    ({:?}, {:?}),",
            need.name,
            testkit_probe::missing(need.name)
        );
    }
    out.push_str("];\n");
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(dir.join("probed.rs"), out).expect("write probed.rs");
}
