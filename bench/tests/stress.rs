//! Stress through the hijack (issue "Reliability", item 2), short versions
//! for every test run; the long soak is `bin/reliability.sh`.
//!
//! `hijack-stress` (src/bin/hijack-stress.rs) is an ordinary program using
//! std::net; under the hijack its sockets live in the in-process kernel.
//! It exits non-zero on any failed connection, and after its soak's
//! warm-up on any growth of host descriptors or threads, or of resident
//! memory by more than 10%, at least 2 MiB (anonymous memory: file-backed code pages
//! coming back in are no leak).

use std::process::{Command, Output, Stdio};

use testkit::hijack::{command, show, tap_config, tap_setup, wait_for_tcp, Helper};
use testkit::netns::in_netns;

const STRESS: &str = env!("CARGO_BIN_EXE_hijack-stress");
/// 64 threads x 1000 connections, 1000 held at once.
const LOAD: [&str; 6] = ["--threads", "64", "--conns", "1000", "--held", "1000"];

fn figures(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}

fn run_ok(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run hijack-stress");
    assert!(out.status.success(), "{}", show(&out));
    out
}

#[test]
fn churn_held_and_soak_on_the_kernel_loopback() {
    // 64 threads x 1000 connections, 1000 held at once, 20 s of mixed
    // traffic; server and clients in one hijacked process.
    let args = [&[STRESS][..], &LOAD, &["--soak", "20"]].concat();
    let mut hijacked = command(&args, &[]);
    let out = run_ok({
        hijacked.stdout(Stdio::piped()).stderr(Stdio::piped());
        hijacked
    });
    print!("hijacked (kernel loopback):\n{}", figures(&out));
    // The host kernel doing the same, for scale (not asserted).
    let host = Command::new(STRESS)
        .args(LOAD)
        .output()
        .expect("run hijack-stress on the host");
    print!("host kernel loopback:\n{}", figures(&host));
}

#[testkit::needs(root, tun)]
#[test]
fn churn_and_held_over_tap() {
    in_netns("churn_and_held_over_tap", "stress", tap_setup, || {
        let dir = std::env::temp_dir().join(format!("lkl-stress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("tap.json");
        std::fs::write(&config, tap_config(Some("0x883"))).unwrap();
        // The server: the host kernel, on the tap's address.
        let server = Helper(
            Command::new(STRESS)
                .args(["--serve", "192.168.113.1:5201"])
                .stdout(Stdio::null())
                .spawn()
                .expect("start the host server"),
        );
        wait_for_tcp("192.168.113.1:5201");
        let args = [&[STRESS, "--connect", "192.168.113.1:5201"][..], &LOAD].concat();
        let mut client = command(
            &args,
            &[("LKL_HIJACK_CONFIG_FILE", config.to_str().unwrap())],
        );
        client.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = client.output().expect("run the hijacked client");
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.status.success(), "{}", show(&out));
        print!("hijacked client over tap:\n{}", figures(&out));
    });
}
