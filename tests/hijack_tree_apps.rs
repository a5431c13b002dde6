//! The process-tree mode with the applications issue 10 names as its
//! hardest cases, each in a network namespace of its own:
//!
//! - nginx with its defaults (`daemon on`, `master_process on`) and two
//!   workers, under a test prefix, serving over the tap: started through
//!   the launcher (which returns once the master has daemonized), reloaded
//!   and stopped through `--attach` (`nginx -s reload`, `-s quit`); the
//!   kernel server halts after the last nginx process;
//! - the kernel's own net selftests that fork per test case (kselftest
//!   harness): `bind_wildcard`, `bind_timewait`, `netlink-dumps`, compiled
//!   from the Linux source the kernel is built from.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::hijack::*;
use testkit::images::Scratch;
use testkit::netns::in_netns;

/// Bytes the host side of the namespace's tap received (from the kernel).
fn tap_rx_bytes() -> u64 {
    std::fs::read_to_string("/sys/class/net/tap0/statistics/rx_bytes")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `/proc/PID/stat`'s state and parent, if the process exists.
fn stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(") ")?;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Running (not gone, not a zombie: the namespace's reaper may be slow).
fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(s, _)| s != 'Z')
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The live children of `pid`, sorted.
fn children(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = all_pids()
        .into_iter()
        .filter(|&p| stat(p).is_some_and(|(s, pp)| pp == pid && s != 'Z'))
        .collect();
    v.sort();
    v
}

/// A process's arguments (empty for a zombie or a gone process).
fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The live processes whose arguments have `flag` followed by `value`.
fn with_arg(flag: &str, value: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| cmdline(p).windows(2).any(|w| w[0] == flag && w[1] == value))
        .collect()
}

/// Polls `ok` until it holds; fails with `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "{what} (after {limit:?})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nginx_bin() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// Kills what a failed test leaves running (the daemon does not end with
/// the test): the master's workers, the master, then the kernel server.
struct Leftovers {
    master: i32,
    server: i32,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let mut pids = if self.master > 0 {
            children(self.master)
        } else {
            Vec::new()
        };
        pids.push(self.master);
        pids.push(self.server);
        for p in pids {
            if p > 0 && alive(p) {
                // SAFETY: a signal to a process this test started.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    }
}

/// One `GET` with `Connection: close`: the body if the status is 200.
fn get(addr: &str, path: &str) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP header");
    let head = String::from_utf8_lossy(&all[..end]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    all.split_off(end + 4)
}

/// The access log's lines (`$remote_addr $pid $status $bytes "$request"`).
fn access_log(path: &Path) -> Vec<(String, i32, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let addr = f.next()?.to_string();
            let pid = f.next()?.parse().ok()?;
            Some((addr, pid, l.to_string()))
        })
        .collect()
}

/// nginx as a distribution runs it: the master daemonizes (the launcher
/// returns), two workers inherit its listening socket on the kernel's
/// address and serve a 3 MB file 20 times to the host side of the tap
/// (the bytes cross the tap: its counter moves by 60 MB; the access log
/// shows the host's address as the client and a worker's pid as the
/// server). `nginx -s reload` through `--attach` makes new workers, which
/// serve; `-s quit` ends every nginx process, and then the kernel server
/// halts by itself: its private directory (removed when it stops serving)
/// disappears, and the server process exits (its exit path halts the
/// kernel) with no `lkl-server --dir DIR` process left.
#[testkit::needs(root, tun, nginx)]
#[test]
fn nginx_daemon_with_two_workers_reloads_and_quits() {
    in_netns(
        "nginx_daemon_with_two_workers_reloads_and_quits",
        "tree-nginx",
        tap_setup,
        || {
            let t = Scratch::new("tree-nginx");
            let dir = t.path("");
            let d = dir.display().to_string();
            for sub in ["logs", "html", "tmp"] {
                std::fs::create_dir_all(t.path(sub)).unwrap();
            }
            let data: Vec<u8> = (0..3u32 << 20).map(|i| (i * 11 % 253) as u8).collect();
            std::fs::write(t.path("html/big"), &data).unwrap();
            let want = sha256(&data);
            let cfg = t.path("tap.json");
            std::fs::write(&cfg, tap_config(Some("0x883"))).unwrap();
            // Only what must point into the prefix: daemon, master_process
            // and the user (root starts workers as nobody) are defaults.
            let conf = t.path("nginx.conf");
            std::fs::write(
                &conf,
                format!(
                    "worker_processes 2;\n\
                     pid {d}/nginx.pid;\n\
                     error_log {d}/logs/error.log info;\n\
                     events {{ worker_connections 256; }}\n\
                     http {{\n\
                     log_format tree '$remote_addr $pid $status $body_bytes_sent \"$request\"';\n\
                     access_log {d}/logs/access.log tree;\n\
                     client_body_temp_path {d}/tmp/body;\n\
                     proxy_temp_path {d}/tmp/proxy;\n\
                     fastcgi_temp_path {d}/tmp/fastcgi;\n\
                     uwsgi_temp_path {d}/tmp/uwsgi;\n\
                     scgi_temp_path {d}/tmp/scgi;\n\
                     server {{ listen 192.168.113.2:8080; root {d}/html; }}\n\
                     }}\n"
                ),
            )
            .unwrap();
            let conf_s = conf.display().to_string();
            let err_s = format!("{d}/logs/error.log");
            let nginx_args = |extra: &[&str]| -> Vec<String> {
                let mut v: Vec<String> = [nginx_bin(), "-p", &d, "-c", &conf_s, "-e", &err_s]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                v.extend(extra.iter().map(|s| s.to_string()));
                v
            };
            let error_log = || std::fs::read_to_string(&err_s).unwrap_or_default();

            // Start: the launcher returns once the master has daemonized.
            let launcher_err = std::fs::File::create(t.path("launcher.err")).unwrap();
            let args = nginx_args(&[]);
            let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let mut start = with_config(&cfg, &argv)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(launcher_err)
                .spawn()
                .unwrap();
            let launcher = start.id() as i32;
            let (st, _) = wait_within(&mut start, Duration::from_secs(60));
            let launcher_said = std::fs::read_to_string(t.path("launcher.err")).unwrap_or_default();
            assert!(
                st.success(),
                "nginx: {st}\n{launcher_said}\n{}",
                error_log()
            );
            // The kernel server watching the launcher's pid (the program's).
            let servers = with_arg("--watch", &launcher.to_string());
            assert_eq!(servers.len(), 1, "the tree's kernel server: {servers:?}");
            let server = servers[0];
            let server_args = cmdline(server);
            let server_dir = server_args
                .windows(2)
                .find(|w| w[0] == "--dir")
                .map(|w| PathBuf::from(&w[1]))
                .expect("the server's --dir");
            let pidfile = t.path("nginx.pid");
            wait_until(Duration::from_secs(10), "no nginx.pid", || {
                std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
            });
            let master: i32 = std::fs::read_to_string(&pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let _leftovers = Leftovers { master, server };
            assert!(alive(master), "the master is gone: {}", error_log());
            assert_ne!(master, launcher, "the master did not daemonize");
            wait_until(Duration::from_secs(10), "two workers", || {
                children(master).len() == 2
            });
            let workers = children(master);
            // The listener is the kernel's: the host's stack has none.
            let host_tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
            assert!(
                !host_tcp
                    .lines()
                    .any(|l| l.contains(":1F90 ") && l.contains(" 0A ")),
                "the host's stack listens on 8080: {host_tcp}"
            );

            // 20 downloads of 3 MB from the host side of the tap.
            let rx0 = tap_rx_bytes();
            for i in 0..20 {
                let body = get("192.168.113.2:8080", "/big");
                assert!(sha256(&body) == want, "download {i}: other bytes");
            }
            let moved = tap_rx_bytes() - rx0;
            assert!(moved >= 20 * (3 << 20), "the tap carried {moved} bytes");
            let log = access_log(&t.path("logs/access.log"));
            assert_eq!(log.len(), 20, "{log:?}");
            for (addr, pid, line) in &log {
                assert!(
                    addr == "192.168.113.1"
                        && workers.contains(pid)
                        && line.contains(" 200 3145728 "),
                    "{line} (workers {workers:?})"
                );
            }
            println!(
                "master {master}, workers {workers:?}, server {server} ({}); {moved} bytes over the tap",
                server_dir.display()
            );

            // `ss` attached to the master's kernel sees the listener.
            let m = master.to_string();
            let out = command(&["--attach", &m, "ss", "-ltnH"], &[])
                .output()
                .unwrap();
            assert!(
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).contains("192.168.113.2:8080"),
                "ss on the tree's kernel: {}",
                show(&out)
            );

            // Reload through the attach path: new workers, which serve.
            let reload = nginx_args(&["-s", "reload"]);
            let mut argv: Vec<&str> = vec!["--attach", &m];
            argv.extend(reload.iter().map(|s| s.as_str()));
            let out = command(&argv, &[]).output().unwrap();
            assert!(out.status.success(), "reload: {}", show(&out));
            wait_until(Duration::from_secs(15), "new workers after reload", || {
                let now = children(master);
                now.len() == 2 && now.iter().all(|p| !workers.contains(p))
            });
            let new_workers = children(master);
            for i in 0..4 {
                let body = get("192.168.113.2:8080", "/big");
                assert!(
                    sha256(&body) == want,
                    "download {i} after reload: other bytes"
                );
            }
            let log = access_log(&t.path("logs/access.log"));
            assert_eq!(log.len(), 24, "{log:?}");
            for (addr, pid, line) in &log[20..] {
                assert!(
                    addr == "192.168.113.1" && new_workers.contains(pid),
                    "{line} (new workers {new_workers:?})"
                );
            }
            println!("after reload: workers {new_workers:?}");

            // Quit: every nginx process ends, then the kernel server.
            let quit = nginx_args(&["-s", "quit"]);
            let mut argv: Vec<&str> = vec!["--attach", &m];
            argv.extend(quit.iter().map(|s| s.as_str()));
            let out = command(&argv, &[]).output().unwrap();
            assert!(out.status.success(), "quit: {}", show(&out));
            wait_until(
                Duration::from_secs(15),
                "nginx still runs after -s quit",
                || !alive(master) && new_workers.iter().all(|&p| !alive(p)),
            );
            wait_until(
                Duration::from_secs(20),
                "the kernel server did not end after the last nginx process",
                || {
                    !server_dir.exists()
                        && !alive(server)
                        && with_arg("--dir", &server_dir.display().to_string()).is_empty()
                },
            );
            let errors = error_log();
            assert!(
                !errors.contains("[alert]") && !errors.contains("[emerg]"),
                "{errors}"
            );
            assert!(errors.contains("exit"), "{errors}");
        },
    );
}

/// The net selftests' sources (tools/testing/selftests): the build's
/// extracted tree if there is one, else the needed files from the tarball.
fn selftests_source(scratch: &Scratch) -> PathBuf {
    let source = testkit::probe::linux_source().expect("the Linux source (needs linux_source)");
    if source.is_dir() {
        return source.join("tools/testing/selftests");
    }
    let cache = std::env::var_os("LKL_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|c| Path::new(&c).join("lkl-hijack")))
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/lkl-hijack")));
    if let Some(Ok(entries)) = cache.map(|c| std::fs::read_dir(c.join("src"))) {
        for e in entries.flatten() {
            let st = e.path().join("tools/testing/selftests");
            if st.join("kselftest_harness.h").exists() && st.join("net/bind_wildcard.c").exists() {
                return st;
            }
        }
    }
    let out = Command::new("tar")
        .arg("-xJf")
        .arg(&source)
        .arg("-C")
        .arg(scratch.path(""))
        .args(["--strip-components=4", "--wildcards"])
        .args([
            "*/tools/testing/selftests/kselftest.h",
            "*/tools/testing/selftests/kselftest_harness.h",
            "*/tools/testing/selftests/net/bind_wildcard.c",
            "*/tools/testing/selftests/net/bind_timewait.c",
            "*/tools/testing/selftests/net/netlink-dumps.c",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {}", show(&out));
    scratch.path("")
}

/// Compiles selftest `name` (net/NAME.c) into the scratch directory.
fn compile_selftest(scratch: &Scratch, name: &str) -> PathBuf {
    let src = selftests_source(scratch);
    let exe = scratch.path(name);
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&exe)
        .arg(src.join(format!("net/{name}.c")))
        .arg("-I")
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success(), "cc {name}: {}", show(&out));
    exe
}

/// A kselftest TAP report: the plan's count of `ok` lines, no `not ok`.
/// Returns the number of cases.
fn tap_passed(out: &Output) -> usize {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let plan: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("1.."))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no TAP plan: {}", show(out)));
    let ok = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    let not_ok = stdout.lines().filter(|l| l.starts_with("not ok ")).count();
    assert!(
        out.status.success() && plan > 0 && ok == plan && not_ok == 0,
        "{ok} of {plan} cases ok: {}",
        show(out)
    );
    plan
}

/// Runs the selftest `name` under the launcher in the tree mode with a
/// config without interfaces (the kernel's loopback), in a namespace whose
/// own loopback is down: there the host's stack cannot bind 127.0.0.1 or
/// ::1, so the bind tests fail without the hijack (checked first), and
/// pass only on the tree's kernel. Every case runs in a child the harness
/// forks.
fn bind_selftest(test: &str, tag: &str, name: &str) {
    in_netns(
        test,
        tag,
        |_| Ok(()),
        || {
            let t = Scratch::new(tag);
            let exe = compile_selftest(&t, name);
            let cfg = t.path("lo.json");
            std::fs::write(&cfg, "{}").unwrap();
            let host = Command::new(&exe).output().unwrap();
            assert!(
                !host.status.success(),
                "{name} passed on the host's stack with its loopback down: {}",
                show(&host)
            );
            let exe_s = exe.display().to_string();
            let out = with_config(&cfg, &[&exe_s]).output().unwrap();
            let n = tap_passed(&out);
            println!("{name}: {n} of {n} cases ok in the tree mode");
        },
    );
}

/// `bind_wildcard` (132 cases, each in a forked child) on the tree's kernel.
#[testkit::needs(root, cc, linux_source)]
#[test]
fn kselftest_bind_wildcard_passes_in_tree_mode() {
    bind_selftest(
        "kselftest_bind_wildcard_passes_in_tree_mode",
        "tree-kst-bw",
        "bind_wildcard",
    );
}

/// `bind_timewait` (a TIME_WAIT socket's port, forked cases) on the tree's
/// kernel.
#[testkit::needs(root, cc, linux_source)]
#[test]
fn kselftest_bind_timewait_passes_in_tree_mode() {
    bind_selftest(
        "kselftest_bind_timewait_passes_in_tree_mode",
        "tree-kst-btw",
        "bind_timewait",
    );
}

/// `netlink-dumps` (generic netlink dumps closed mid-way, forked cases) on
/// the tree's kernel. Its `close_with_ref` case calls `mq_open` and
/// `mq_notify` through raw `syscall()`, which the library does not see
/// (only the every-syscall tier would): they reach the host kernel, so the
/// case passes without exercising what it means to (a notification holding
/// a reference to the kernel's netlink socket) — it checks only that
/// `mq_open` succeeded. The run is in an IPC namespace of its own (with a
/// fresh mqueue mount), so the host's queue it creates goes with it; the
/// test prints where the queue went.
#[testkit::needs(root, cc, linux_source)]
#[test]
fn kselftest_netlink_dumps_passes_in_tree_mode() {
    in_netns(
        "kselftest_netlink_dumps_passes_in_tree_mode",
        "tree-kst-nl",
        |_| Ok(()),
        || {
            let t = Scratch::new("tree-kst-nl");
            let exe = compile_selftest(&t, "netlink-dumps");
            let cfg = t.path("lo.json");
            std::fs::write(&cfg, "{}").unwrap();
            let mq = t.path("mq");
            std::fs::create_dir_all(&mq).unwrap();
            let out = Command::new("unshare")
                .args(["--ipc", "--mount", "sh", "-c"])
                .arg(
                    "mount -t mqueue none \"$0\" || exit 99; \"$@\"; s=$?; \
                     echo \"host mqueues: $(ls \"$0\" | tr '\\n' ' ')\" >&2; exit $s",
                )
                .arg(&mq)
                .arg(script())
                .arg(&exe)
                .env("LKL_HIJACK_LIB", library())
                .env("LKL_HIJACK_CONFIG_FILE", &cfg)
                .current_dir(std::env::temp_dir())
                .output()
                .unwrap();
            let n = tap_passed(&out);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let queues = stderr
                .lines()
                .find_map(|l| l.strip_prefix("host mqueues: "))
                .unwrap_or("?");
            println!(
                "netlink-dumps: {n} of {n} cases ok in the tree mode; close_with_ref's mq_open \
                 reached {}",
                if queues.split_whitespace().any(|q| q == "sed") {
                    "the host kernel (raw syscall(), not followed)"
                } else {
                    "the tree's kernel"
                }
            );
        },
    );
}

/// A kernel call that succeeds leaves the program's errno as it was, as
/// the host's do: glibc's `readdir` ends a directory with NULL and errno
/// untouched, and `tar` reads a changed errno as an error ("Cannot
/// savedir"). The channel's own failed host calls (a spin's EAGAIN) must
/// not show through.
#[testkit::needs(cc)]
#[test]
fn successful_kernel_calls_leave_errno_alone() {
    let t = Scratch::new("tree-errno");
    let src = t.path("errno.c");
    std::fs::write(
        &src,
        r#"#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
int main(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), changed = 0;
	if (s < 0) { perror("socket"); return 1; }
	for (int i = 0; i < 20000; i++) {
		errno = 0;
		if (fcntl(s, F_GETFL) < 0) { perror("fcntl"); return 1; }
		changed += errno != 0;
	}
	printf("changed %d\n", changed);
	return 0;
}
"#,
    )
    .unwrap();
    let exe = t.path("errno");
    let cc = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", show(&cc));
    let out = hijacked(&[exe.to_str().unwrap()], &[]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("changed 0\n"),
        "{}",
        show(&out)
    );
}
