//! LKL's hijack-test.sh catalogue and our own additions
//! (`tests/hijack/run.sh`, TAP output), run against the library built next
//! to this test binary. Any "not ok" fails the test; every TAP line is
//! shown. A case the runner skips ("# SKIP": a tool or device missing)
//! fails it too: the test names what the cases need, so where one is
//! missing the whole catalogue is ignored instead (under `CI=true`, it
//! fails), never passed with holes.

use std::process::Command;

use testkit::hijack::library;

/// The process-tree mode (the launcher's default).
#[testkit::needs(root, tun, python3, ping, iperf3, vde_switch)]
#[test]
fn hijack_catalogue() {
    catalogue("tree");
}

/// The single-process mode (`--single-process`, LKL's way).
#[testkit::needs(root, tun, python3, ping, iperf3, vde_switch)]
#[test]
fn hijack_catalogue_single_process() {
    catalogue("single");
}

fn catalogue(mode: &str) {
    let runner = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hijack/run.sh");
    let out = Command::new("bash")
        .arg(&runner)
        .env("LKL_HIJACK_LIB", library())
        .env("LKL_CATALOGUE_MODE", mode)
        .output()
        .expect("run tests/hijack/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("not ok")).collect();
    let plan = stdout.lines().any(|l| l.starts_with("1.."));
    assert!(
        failed.is_empty() && plan && out.status.success(),
        "catalogue: {} failed ({}), plan line {}\n{}\n--- stderr\n{stderr}",
        failed.len(),
        out.status,
        if plan {
            "present"
        } else {
            "missing (the runner stopped early)"
        },
        failed.join("\n")
    );
    let skipped: Vec<&str> = stdout.lines().filter(|l| l.contains("# SKIP")).collect();
    assert!(
        skipped.is_empty(),
        "catalogue: {} cases skipped (a prerequisite the test does not name?):\n{}",
        skipped.len(),
        skipped.join("\n")
    );
    println!("catalogue passed");
}
