//! Two processes, each with a kernel of its own, joined by two FIFOs (the
//! `pipe` backend): each pings the other and every echo request is
//! answered. No root, no tap and no namespace: the FIFOs are in a temporary
//! directory, and the two processes are runs of `net-test`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use testkit::images::Scratch;
use testkit::in_child;

const NET_TEST: &str = env!("CARGO_BIN_EXE_net-test");
/// Echo requests each side sends.
const COUNT: u32 = 10;
/// How long a side stays up after its own pings (it is stopped sooner, as
/// soon as both sides are done; this bounds a run the test lost track of).
const SERVE_SECS: &str = "30";
/// What net-test says when the kernel was built without networking.
const NO_NET: &str = "skipped: this kernel config has no networking";

/// A FIFO `name` in `dir`; its path.
fn fifo(dir: &Scratch, name: &str) -> String {
    let path = dir.path(name);
    let out = Command::new("mkfifo")
        .arg(&path)
        .output()
        .expect("mkfifo (coreutils)");
    assert!(
        out.status.success(),
        "mkfifo {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    path.to_str().expect("temp dir path is UTF-8").to_string()
}

/// One running net-test, its output lines arriving on a channel; killed
/// (it is our own child) when dropped.
struct Peer {
    name: &'static str,
    child: Child,
    /// Held open only so the child's stdin is not at EOF; net-test does
    /// not read it.
    _stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Peer {
    fn spawn(name: &'static str, args: &[&str]) -> Peer {
        let mut child = Command::new(NET_TEST)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{NET_TEST}: {e}"));
        let (tx, lines) = mpsc::channel();
        fn relay(from: impl Read + Send + 'static, tx: mpsc::Sender<String>, prefix: &'static str) {
            std::thread::spawn(move || {
                for line in BufReader::new(from).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(format!("{prefix}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        relay(child.stdout.take().expect("piped"), tx.clone(), "");
        relay(child.stderr.take().expect("piped"), tx, "stderr: ");
        Peer {
            name,
            _stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until a line containing `pat` (or net-test's no-networking
    /// line) is printed; `None` if the process ends or `deadline` passes
    /// first.
    fn wait_for(&mut self, pat: &str, deadline: Instant) -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(pat) || line.contains(NO_NET) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    fn output(&self) -> String {
        format!("--- {}\n{}", self.name, self.seen.join("\n"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `net-test` on the pipe `rx|tx` as `ip`, pinging `dst` after `sleep`
/// seconds and then staying up.
fn net_test_args(rx: &str, tx: &str, ip: &str, dst: &str, mac: &str, sleep: &str) -> Vec<String> {
    [
        "--backend",
        "pipe",
        "--ifname",
        &format!("{rx}|{tx}"),
        "--ip",
        ip,
        "--netmask-len",
        "24",
        "--dst",
        dst,
        "--mac",
        mac,
        "--count",
        &COUNT.to_string(),
        "--sleep",
        sleep,
        "--serve",
        SERVE_SECS,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn pipe_pair_body() {
    let dir = Scratch::new("pipe");
    let a2b = fifo(&dir, "a2b");
    let b2a = fifo(&dir, "b2a");
    let deadline = Instant::now() + Duration::from_secs(40);

    // B comes up first and says so ("eth0: ..."); it pings A only after
    // two seconds, by when A (a few milliseconds of boot) is up too.
    let b_args = net_test_args(
        &a2b,
        &b2a,
        "10.77.0.2",
        "10.77.0.1",
        "02:00:00:77:00:02",
        "2",
    );
    let mut b = Peer::spawn(
        "B (10.77.0.2)",
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let ready = b.wait_for("eth0: ", deadline);
    match ready.as_deref() {
        Some(l) if l.contains(NO_NET) => panic!("the kernel has no networking: {l}"),
        Some(_) => {}
        None => panic!("B did not come up\n{}", b.output()),
    }

    // A pings B at once, then stays up for B's pings.
    let a_args = net_test_args(
        &b2a,
        &a2b,
        "10.77.0.1",
        "10.77.0.2",
        "02:00:00:77:00:01",
        "0",
    );
    let mut a = Peer::spawn(
        "A (10.77.0.1)",
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let t0 = Instant::now();
    let a_stats = a.wait_for("packets transmitted", deadline);
    let a_rtt = a.wait_for("rtt ", deadline);
    let b_stats = b.wait_for("packets transmitted", deadline);
    let b_rtt = b.wait_for("rtt ", deadline);
    let elapsed = t0.elapsed();
    let all = format!("{}\n{}", a.output(), b.output());
    let want = format!("{COUNT} packets transmitted, {COUNT} received");
    assert!(
        a_stats.as_deref().is_some_and(|l| l.contains(&want)),
        "A -> B: want \"{want}\"\n{all}"
    );
    assert!(
        b_stats.as_deref().is_some_and(|l| l.contains(&want)),
        "B -> A: want \"{want}\"\n{all}"
    );
    println!(
        "A -> B: {} ({})",
        a_stats.unwrap_or_default(),
        a_rtt.unwrap_or_default()
    );
    println!(
        "B -> A: {} ({})",
        b_stats.unwrap_or_default(),
        b_rtt.unwrap_or_default()
    );
    println!("both done {:.1} s after A started", elapsed.as_secs_f64());
    // Both are now only serving: stop them (Drop kills and reaps).
    drop(a);
    drop(b);
}

#[testkit::needs(kernel_net)]
#[test]
fn pipe_pair_ping_each_other() {
    in_child(
        "pipe_pair_ping_each_other",
        Duration::from_secs(60),
        pipe_pair_body,
    );
}
