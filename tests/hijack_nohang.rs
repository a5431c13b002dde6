//! The "no hang" catalogue (issue 15): event-loop programs from
//! tests/nohang/ run under the hijack on the kernel's loopback (no config),
//! each with a watchdog that kills its whole process group and fails the
//! test instead of hanging CI. Every program runs on the host first, as the
//! reference: a script that fails there is reported as such, not blamed on
//! the library.
//!
//! What each covers, and the root causes the regressions stand for, is in
//! docs/hijack-signals.md: asyncio with each child watcher, the self-pipe
//! loop on epoll/poll/select, signals from other threads, sendfile and
//! sock_sendall to peers that close or reset mid-transfer, two threads
//! polling one socket, C handlers that close, write or exit while their
//! thread waits in the kernel, vfork children, Node's child_process and
//! net. Each test names what it runs (`python3`, `cc`, `node`) as a
//! prerequisite (docs/testing.md).

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use testkit::hijack::{command, PYTHON};

/// Longest any one program may take (they take about a second).
const LIMIT: Duration = Duration::from_secs(90);

/// A program's end: status, both streams, how long it took.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "status {} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.took, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` in a process group of its own, at most `limit`: after that
/// the whole group (the program's children too, which may hold its pipes)
/// is killed and the test fails with what the program printed.
fn run_limited(mut cmd: Command, what: &str, limit: Duration) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if t0.elapsed() > limit {
            timed_out = true;
            // SAFETY: signals the process group this test created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = t0.elapsed();
    if !timed_out {
        // Children left behind (a daemonised grandchild) go too.
        // SAFETY: as above.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    }
    let run = Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        took,
    };
    assert!(
        !timed_out,
        "{what}: HANG, still running after {limit:?} (killed)\n{}",
        run.show()
    );
    run
}

/// `args` under the hijack (loopback only).
fn hijacked(args: &[&str]) -> Run {
    run_limited(command(args, &[]), &format!("hijacked {args:?}"), LIMIT)
}

/// `args` on the host, in the same directory the hijacked run uses.
fn on_host(args: &[&str]) -> Run {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]).current_dir(std::env::temp_dir());
    run_limited(cmd, &format!("host {args:?}"), LIMIT)
}

/// A program of tests/nohang/.
fn program(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/nohang")
        .join(name)
        .display()
        .to_string()
}

/// Runs `args` on the host and under the hijack; both must succeed and
/// print `expect`. A program that cannot run its case here says "skip
/// WHY" on the host: that fails the test (this machine lacks what the
/// case needs), it is not a pass. Returns the hijacked run.
fn same_as_host(args: &[&str], expect: &str) -> Run {
    let host = on_host(args);
    assert!(
        !host.stdout.starts_with("skip"),
        "{args:?} cannot run here: {}",
        host.stdout.trim()
    );
    assert!(
        host.status.success() && host.stdout.contains(expect),
        "{args:?} fails on the host itself (the test, not the library):\n{}",
        host.show()
    );
    let run = hijacked(args);
    assert!(
        run.status.success() && run.stdout.contains(expect),
        "{args:?} under the hijack: expected {expect:?}\n{}",
        run.show()
    );
    println!(
        "{args:?}: {} on the host in {:?}, under the hijack in {:?}",
        expect, host.took, run.took
    );
    run
}

fn python(script: &str, arg: &str, expect: &str) -> Run {
    let path = program(script);
    let mut args = vec![PYTHON, path.as_str()];
    if !arg.is_empty() {
        args.push(arg);
    }
    same_as_host(&args, expect)
}

// ---- The issue's three repros, as given --------------------------------

/// Issue 15, 1: a SIGCHLD-driven child watcher never saw its child exit.
/// Root cause: Python's subprocess vforks, and its vfork child reset every
/// handled signal to SIG_DFL through our sigaction hook, in the parent's
/// memory: the parent's record of its SIGCHLD handler was cleared, so our
/// wrapper swallowed the parent's next SIGCHLD. vfork is now served by fork.
#[testkit::needs(python3)]
#[test]
fn issue15_safe_child_watcher_sees_the_exit() {
    let script = r#"
import asyncio, warnings
warnings.simplefilter("ignore", DeprecationWarning)
async def main():
    p = await asyncio.create_subprocess_exec("sh", "-c", "echo hi", stdout=asyncio.subprocess.PIPE)
    await p.stdout.read()
    print("exit", await p.wait())
asyncio.set_child_watcher(asyncio.SafeChildWatcher())
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
asyncio.get_child_watcher().attach_loop(loop)
loop.run_until_complete(main())
"#;
    same_as_host(&[PYTHON, "-c", script], "exit 0");
}

/// Issue 15, 2: reading a child's pipe to EOF from an event loop that reaps
/// on SIGCHLD (the same root cause as 1).
#[testkit::needs(python3)]
#[test]
fn issue15_child_pipe_read_to_eof() {
    let script = r#"
import asyncio, warnings
warnings.simplefilter("ignore", DeprecationWarning)
async def main():
    p = await asyncio.create_subprocess_exec(
        "sh", "-c", "for i in 1 2 3; do echo line $i; done",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    print("read", len(out.splitlines()), "exit", p.returncode)
asyncio.set_child_watcher(asyncio.FastChildWatcher())
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
asyncio.get_child_watcher().attach_loop(loop)
loop.run_until_complete(main())
"#;
    same_as_host(&[PYTHON, "-c", script], "read 3 exit 0");
}

/// Issue 15, 3: loop.sendfile() of a host file to a kernel socket whose peer
/// closes mid-transfer. Root cause: the copy across worlds answered every
/// failed write with EAGAIN, so asyncio waited for writability, found the
/// dead socket "writable" and tried again, for ever.
#[testkit::needs(python3)]
#[test]
fn issue15_loop_sendfile_peer_closes() {
    let script = r#"
import asyncio, os, socket, tempfile
async def main():
    loop = asyncio.get_running_loop()
    f = tempfile.TemporaryFile()
    f.write(os.urandom(1 << 20) * 16); f.flush(); f.seek(0)
    done = loop.create_future()
    async def handle(r, w):
        try:
            await loop.sendfile(w.transport, f)
            done.set_result("sent everything")
        except ConnectionError:
            done.set_result("peer gone")
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    c = socket.create_connection(srv.sockets[0].getsockname())
    await asyncio.sleep(0.05)
    c.recv(1000)
    c.close()
    print(await done)
asyncio.run(main())
"#;
    same_as_host(&[PYTHON, "-c", script], "peer gone");
}

/// The first root cause by itself: a Python handler still runs after a
/// subprocess was started (the vfork child reset it in its own memory).
#[testkit::needs(python3)]
#[test]
fn handlers_survive_a_vfork_child() {
    let script = r#"
import os, signal, subprocess, time
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
for _ in range(3):
    subprocess.run(["true"])
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.01)
print("handled", len(got))
"#;
    same_as_host(&[PYTHON, "-c", script], "handled 3");
}

// ---- asyncio with each child watcher ----------------------------------

#[testkit::needs(python3)]
#[test]
fn asyncio_safe_child_watcher() {
    python(
        "asyncio_child.py",
        "SafeChildWatcher",
        "ok SafeChildWatcher",
    );
}

#[testkit::needs(python3)]
#[test]
fn asyncio_fast_child_watcher() {
    python(
        "asyncio_child.py",
        "FastChildWatcher",
        "ok FastChildWatcher",
    );
}

#[testkit::needs(python3)]
#[test]
fn asyncio_multiloop_child_watcher() {
    python(
        "asyncio_child.py",
        "MultiLoopChildWatcher",
        "ok MultiLoopChildWatcher",
    );
}

#[testkit::needs(python3)]
#[test]
fn asyncio_threaded_child_watcher() {
    python(
        "asyncio_child.py",
        "ThreadedChildWatcher",
        "ok ThreadedChildWatcher",
    );
}

#[testkit::needs(python3)]
#[test]
fn asyncio_pidfd_child_watcher() {
    python(
        "asyncio_child.py",
        "PidfdChildWatcher",
        "ok PidfdChildWatcher",
    );
}

// ---- Self-pipe loops, signals, sendfile, pollers -----------------------

#[testkit::needs(python3)]
#[test]
fn self_pipe_loop_epoll() {
    python("selfpipe.py", "epoll", "ok self-pipe epoll");
}

#[testkit::needs(python3)]
#[test]
fn self_pipe_loop_poll() {
    python("selfpipe.py", "poll", "ok self-pipe poll");
}

#[testkit::needs(python3)]
#[test]
fn self_pipe_loop_select() {
    python("selfpipe.py", "select", "ok self-pipe select");
}

#[testkit::needs(python3)]
#[test]
fn signals_from_other_threads() {
    python("signals.py", "", "ok signals");
}

/// Every case must end the same way as on the host, line for line.
#[testkit::needs(python3)]
#[test]
fn sendfile_and_sendall_to_peers_that_go_away() {
    let path = program("sendfile.py");
    let host = on_host(&[PYTHON, &path]);
    assert!(
        host.status.success() && host.stdout.contains("ok sendfile"),
        "sendfile.py fails on the host itself:\n{}",
        host.show()
    );
    let run = hijacked(&[PYTHON, &path]);
    assert!(
        run.status.success() && run.stdout == host.stdout,
        "under the hijack, not as on the host:\n--- host stdout\n{}{}",
        host.stdout,
        run.show()
    );
    println!(
        "{}host {:?}, hijacked {:?}",
        run.stdout, host.took, run.took
    );
}

/// A program that does not ignore SIGPIPE dies of it, as on the host.
#[testkit::needs(python3)]
#[test]
fn sendfile_to_a_closed_peer_raises_sigpipe() {
    let path = program("sendfile.py");
    for run in [
        on_host(&[PYTHON, &path, "sigpipe"]),
        hijacked(&[PYTHON, &path, "sigpipe"]),
    ] {
        assert_eq!(
            run.status.signal(),
            Some(libc::SIGPIPE),
            "expected death by SIGPIPE\n{}",
            run.show()
        );
    }
}

#[testkit::needs(python3)]
#[test]
fn two_threads_poll_one_socket() {
    python("poll_threads.py", "", "ok poll threads");
}

// ---- C signal handlers ---------------------------------------------------

/// tests/nohang/handlers.c, built once with the system's C compiler.
fn handlers() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nohang-handlers");
        let st = Command::new("cc")
            .args(["-O1", "-Wall", "-pthread", "-o"])
            .arg(&out)
            .arg(program("handlers.c"))
            .status()
            .expect("run cc");
        assert!(st.success(), "cc tests/nohang/handlers.c failed");
        out
    })
}

fn c_handlers(mode: &str, expect: &str) -> Run {
    let bin = handlers().display().to_string();
    same_as_host(&[&bin, mode], expect)
}

#[testkit::needs(cc)]
#[test]
fn c_handler_closes_the_socket_its_thread_waits_on() {
    c_handlers("close", "ok close");
}

#[testkit::needs(cc)]
#[test]
fn c_handler_writes_a_self_pipe_during_a_kernel_call() {
    c_handlers("selfpipe", "ok selfpipe");
}

#[testkit::needs(cc)]
#[test]
fn c_handler_writes_a_kernel_socket_during_a_kernel_call() {
    c_handlers("nested", "ok nested");
}

#[testkit::needs(cc)]
#[test]
fn c_handler_exits_during_a_kernel_call() {
    c_handlers("exit", "waiting");
}

/// A handler that leaves by siglongjmp never returns to our wrapper: the
/// thread must not count as inside a handler from then on (its closes of
/// kernel descriptors would only ever be left for later).
#[testkit::needs(cc)]
#[test]
fn c_handler_jumps_out_and_closes_still_close() {
    c_handlers("jump", "ok jump");
}

#[testkit::needs(cc)]
#[test]
fn c_vfork_children_reset_sigchld() {
    c_handlers("vfork", "ok vfork");
}

// ---- Node ---------------------------------------------------------------

#[testkit::needs(node)]
#[test]
fn node_child_process() {
    same_as_host(
        &["node", &program("node_child.js")],
        "ok node child_process",
    );
}

#[testkit::needs(node)]
#[test]
fn node_net_peers_that_go_away() {
    same_as_host(&["node", &program("node_net.js")], "ok node net");
}
