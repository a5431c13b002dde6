//! Rewritten system-call sites (docs/every-syscall.md, "Rewritten
//! sites"): with the system-call tier on, a hot `syscall` site is patched
//! after its first trap to jump into a stub of ours, and its later calls
//! skip the trap; a site that cannot be proven safe, and code generated at
//! run time, keep the trap. Programs are built here from tests/rewrite/
//! (and the Go client and server of tests/syscalls/). The counters come from the
//! library (`lkl_hijack_tier_stats`, or the line `LKL_HIJACK_REWRITE=stats`
//! prints at `exit_group`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::hijack::*;
use testkit::netns::in_netns;

fn sources() -> PathBuf {
    testkit::repo().join("tests/rewrite")
}

fn build_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rewrite");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// tests/rewrite/hot.c, built with the system's C compiler.
fn build_hot() -> PathBuf {
    testkit::build::cc(
        &sources().join("hot.c"),
        &build_dir().join("hot"),
        &["-lpthread"],
    )
}

/// The Go program in `dir`, with cgo (dynamic) or without (static).
fn build_go(dir: &Path, name: &str, cgo: bool) -> PathBuf {
    let out = build_dir().join(if cgo {
        name.to_string()
    } else {
        format!("{name}-static")
    });
    testkit::build::go(dir, &out, cgo, &build_dir().join("go"))
}

/// Runs `cmd` to the end, 120 s at most (then killed: the test fails).
fn output_within(cmd: &mut Command) -> std::process::Output {
    testkit::build::output_within(cmd, Duration::from_secs(120))
}

/// One line of hot.c: (calls, through rewritten sites, through the trap,
/// sites patched, sites refused, failures).
fn part(stdout: &str, name: &str) -> [u64; 6] {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} line in {stdout}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let num = |k: &str| -> u64 {
        let i = w.iter().position(|x| *x == k).unwrap();
        w[i + 1].parse().unwrap()
    };
    [
        num("calls"),
        num("fast"),
        num("trap"),
        num("patched"),
        num("refused"),
        num("failures"),
    ]
}

#[testkit::needs(cc, sud)]
#[test]
fn hot_sites_are_rewritten_and_stay_correct() {
    let prog = build_hot();
    let out = output_within(&mut command(
        &[prog.to_str().unwrap(), "20000"],
        &[
            ("LKL_HIJACK_SYSCALLS", "all"),
            ("LKL_HIJACK_REWRITE", "stats"),
        ],
    ));
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("stats yes\n"), "{}", show(&out));
    assert!(stdout.ends_with("ok\n"), "{}", show(&out));
    assert!(!stdout.contains("jit code was changed"), "{stdout}");
    // One site called 20000 times: its first call traps, the rest go
    // through the rewritten site; every result right.
    let [calls, fast, _, patched, _, failures] = part(&stdout, "hot");
    assert_eq!(failures, 0);
    assert_eq!(patched, 1, "{stdout}");
    assert!(fast >= calls - 1, "{stdout}");
    // 4 threads on one site while it is patched: all results right.
    let [calls, fast, _, _, _, failures] = part(&stdout, "threads");
    assert_eq!(failures, 0, "{stdout}");
    assert!(fast * 100 >= calls * 95, "{stdout}");
    // syscall(): the library's hook issues the number from a site of its
    // own, rewritten too.
    let [calls, fast, _, _, _, failures] = part(&stdout, "syscall");
    assert_eq!(failures, 0, "{stdout}");
    assert!(fast >= calls - 1, "{stdout}");
    // sbrk and malloc on one heap: the break as glibc records it.
    assert_eq!(part(&stdout, "brk")[5], 0, "{stdout}");
    // Code generated at run time, a site a branch could land inside, a
    // site with nothing relocatable before it: the trap, every call.
    for name in ["jit", "branch", "push"] {
        let [calls, fast, trap, _, refused, _] = part(&stdout, name);
        assert_eq!(fast, 0, "{name}: {stdout}");
        assert!(trap >= calls, "{name}: {stdout}");
        assert_eq!(refused, 1, "{name}: {stdout}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not in a private read-only file mapping (run-time code?)")
            && err.contains("a branch lands inside the bytes to overwrite")
            && err.contains("no relocatable instruction before the syscall"),
        "{err}"
    );
    println!("{stdout}");
}

/// The program's vector registers and MXCSR across routed calls
/// (tests/rewrite/vector.c): the `syscall` instruction keeps them all, so
/// the trampoline must, through the trap and through rewritten sites, with
/// the state saved by hand (the default where the CPU allows) and with
/// XSAVE (`LKL_HIJACK_XSAVE=1`); components in their initial state stay
/// zero.
#[testkit::needs(cc, sud)]
#[test]
fn vector_state_survives_routed_calls() {
    let prog = testkit::build::cc(
        &sources().join("vector.c"),
        &build_dir().join("vector"),
        &["-ldl"],
    );
    for xsave in ["0", "1", "xgetbv"] {
        let out = output_within(&mut command(
            &[prog.to_str().unwrap(), "2000"],
            &[("LKL_HIJACK_SYSCALLS", "all"), ("LKL_HIJACK_XSAVE", xsave)],
        ));
        assert!(out.status.success(), "{}", show(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let parts: Vec<&str> = stdout.lines().filter(|l| l.contains(" calls ")).collect();
        assert!(parts.len() >= 2, "{}", show(&out));
        for line in parts {
            let w: Vec<&str> = line.split_whitespace().collect();
            let num = |k: &str| -> u64 {
                let i = w.iter().position(|x| *x == k).unwrap();
                w[i + 1].parse().unwrap()
            };
            assert_eq!(num("failures"), 0, "{}", show(&out));
            // The first call traps, the rest go through the rewritten site.
            assert!(num("fast") + 1 >= num("calls"), "{line}");
        }
        println!("LKL_HIJACK_XSAVE={xsave}:\n{stdout}");
    }
}

#[testkit::needs(cc, sud)]
#[test]
fn rewriting_can_be_turned_off() {
    let prog = build_hot();
    let out = output_within(&mut command(
        &[prog.to_str().unwrap(), "2000"],
        &[("LKL_HIJACK_SYSCALLS", "all"), ("LKL_HIJACK_REWRITE", "0")],
    ));
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let [calls, fast, trap, patched, _, failures] = part(&stdout, "hot");
    assert_eq!((fast, patched, failures), (0, 0, 0), "{stdout}");
    assert!(trap >= calls, "{stdout}");
    // A value it does not know stops the program before main.
    let out = output_within(&mut command(
        &[prog.to_str().unwrap(), "10"],
        &[
            ("LKL_HIJACK_SYSCALLS", "all"),
            ("LKL_HIJACK_REWRITE", "yes"),
        ],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(err.contains("LKL_HIJACK_REWRITE"), "{err}");
    assert!(out.stdout.is_empty(), "{}", show(&out));
}

/// The `stats` line's figures: (through rewritten sites, through the
/// trap, of which at known sites, sites rewritten, sites refused).
fn stats_line(stderr: &str) -> (u64, u64, u64, u64, u64) {
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("lkl-hijack: rewrite: ") && l.contains(" calls through"))
        .unwrap_or_else(|| panic!("no counters in {stderr}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    // fast, trap, known, share (2), steady (2), patched, refused
    (nums[0], nums[1], nums[2], nums[7], nums[8])
}

fn tap_counter(name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/tap0/statistics/{name}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `n` concurrent clients of the server at 192.168.113.2:8080, each
/// checking its 64 KiB response.
fn clients(n: usize) {
    concurrent_gets("192.168.113.2:8080", n, "192.168.113.1", 65536);
}

#[testkit::needs(root, tun, go, sud)]
#[test]
fn static_go_server_with_rewritten_sites() {
    go_server("static_go_server_with_rewritten_sites", "rwgosrvs", false);
}

#[testkit::needs(root, tun, go, sud)]
#[test]
fn cgo_go_server_with_rewritten_sites() {
    go_server("cgo_go_server_with_rewritten_sites", "rwgosrv", true);
}

/// The Go net/http server of tests/syscalls/goserver (which exits on
/// /quit) on the kernel's address, GOMAXPROCS=4: two rounds of 50
/// concurrent clients from the host side over the tap, then /quit; its
/// calls mostly through rewritten sites (the counters at its exit).
fn go_server(test: &str, tag: &'static str, cgo: bool) {
    in_netns(test, tag, tap_setup, || {
        let server = build_go(
            &testkit::repo().join("tests/syscalls/goserver"),
            "rwserver",
            cgo,
        );
        let config = tap_config_file(&build_dir(), tag);
        let mut cmd = with_config(&config, &[server.to_str().unwrap(), "192.168.113.2:8080"]);
        cmd.env("GOMAXPROCS", "4")
            .env("LKL_HIJACK_REWRITE", "stats")
            .stderr(Stdio::piped());
        let (child, line) = start_first_line(cmd);
        let mut child = Helper(child);
        assert!(line.contains("listening 192.168.113.2:8080"), "{line:?}");
        let rx = tap_counter("rx_bytes");
        clients(50);
        clients(50);
        let rx2 = tap_counter("rx_bytes");
        let mut q = TcpStream::connect("192.168.113.2:8080").unwrap();
        q.write_all(b"GET /quit HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut bye = Vec::new();
        let _ = q.read_to_end(&mut bye);
        let (status, _) = wait_within(&mut child.0, Duration::from_secs(60));
        let mut err = String::new();
        child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let _ = std::fs::remove_file(&config);
        assert!(status.success(), "{status}: {err}");
        assert!(rx2 >= rx + 100 * 65536, "tap rx_bytes {rx} -> {rx2}");
        let (fast, trap, known, patched, refused) = stats_line(&err);
        let share = fast as f64 * 100.0 / (fast + trap) as f64;
        let steady = fast as f64 * 100.0 / (fast + known) as f64;
        println!(
            "Go server ({}): {fast} calls through rewritten sites, {trap} through the trap ({known} at known sites): share {share:.1}%, steady {steady:.1}%; {patched} sites rewritten, {refused} refused",
            if cgo { "cgo" } else { "static" }
        );
        assert!(patched > 0 && fast > trap, "{err}");
    });
}

/// A host-side server on 192.168.113.1 answering one HTTP request with
/// `body` bytes.
fn body_server(body: usize) -> (u16, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("192.168.113.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut c, peer) = l.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"\r\n\r\n") {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let ip = peer.ip().to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {body}\r\nX-Peer: {ip}\r\nConnection: close\r\n\r\n"
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&vec![b'x'; body]).unwrap();
        ip
    });
    (port, h)
}

#[testkit::needs(root, tun, go, sud)]
#[test]
fn static_go_client_with_rewritten_sites() {
    in_netns(
        "static_go_client_with_rewritten_sites",
        "rwgocls",
        tap_setup,
        || {
            let client = build_go(
                &testkit::repo().join("tests/syscalls/goclient"),
                "goclient",
                false,
            );
            let config = tap_config_file(&build_dir(), "rwgocls");
            let body = 3 << 20;
            let (port, server) = body_server(body);
            let tx = tap_counter("tx_bytes");
            let url = format!("http://192.168.113.1:{port}/");
            let mut cmd = with_config(&config, &[client.to_str().unwrap(), &url]);
            cmd.env("LKL_HIJACK_REWRITE", "stats");
            let out = output_within(&mut cmd);
            let tx2 = tap_counter("tx_bytes");
            let peer = server.join().unwrap();
            let _ = std::fs::remove_file(&config);
            assert!(out.status.success(), "{}", show(&out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains(&format!("status 200 bytes {body} peer-saw 192.168.113.2")),
                "{stdout}"
            );
            assert_eq!(peer, "192.168.113.2");
            assert!(tx2 >= tx + body as u64, "tap tx_bytes {tx} -> {tx2}");
            let (fast, trap, _, patched, _) = stats_line(&String::from_utf8_lossy(&out.stderr));
            assert!(patched > 0 && fast > 0, "{}", show(&out));
            println!("Go client: 3 MB over the tap; {fast} calls through rewritten sites, {trap} through the trap");
        },
    );
}

/// The numbers `lkl_tier_fast` issues to the host itself (rewrite.rs's
/// DIRECT, the same list in trap.rs's assembly) are ones the router gives
/// the host as they are: no arm of route.rs or loader.rs names them.
#[test]
fn direct_calls_are_the_routers_host_calls() {
    let read = |p: &str| std::fs::read_to_string(testkit::repo().join(p)).unwrap();
    let rewrite = read("src/hijack/tier/rewrite.rs");
    let start = rewrite.find("pub const DIRECT").unwrap();
    let list = &rewrite[start..];
    let list = &list[list.find("= [").unwrap() + 3..list.find("];").unwrap()];
    let direct: Vec<u64> = list.split(',').map(|n| n.trim().parse().unwrap()).collect();
    let trap = read("src/hijack/tier/trap.rs");
    let lines: Vec<&str> = trap.lines().collect();
    let mut asm: Vec<u64> = Vec::new();
    for w in lines.windows(2) {
        if w[1].contains("je 20f") {
            let n = w[0].split('$').nth(1).unwrap().split(',').next().unwrap();
            asm.push(n.parse().unwrap());
        }
    }
    assert_eq!(asm, direct, "trap.rs's list and rewrite.rs's DIRECT");
    // Every number a match arm of the router names (ranges included).
    let mut named = Vec::new();
    for file in ["src/hijack/tier/route.rs", "src/hijack/tier/loader.rs"] {
        for line in read(file).lines() {
            let Some((pat, _)) = line.split_once("=>") else {
                continue;
            };
            let pat = pat.split(" if ").next().unwrap();
            for alt in pat.split('|') {
                let alt = alt.trim();
                if let Some((a, b)) = alt.split_once("..=") {
                    if let (Ok(a), Ok(b)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
                        named.extend(a..=b);
                    }
                } else if let Ok(n) = alt.parse::<u64>() {
                    named.push(n);
                }
            }
        }
    }
    assert!(named.contains(&41) && named.contains(&288), "{named:?}");
    let both: Vec<_> = direct.iter().filter(|n| named.contains(n)).collect();
    assert!(
        both.is_empty(),
        "routed by the router, yet issued directly: {both:?}"
    );
}
