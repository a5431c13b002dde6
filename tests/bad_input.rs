//! Bad input, each with its clear error and no crash, hang or leak:
//! hostile configs (the hijacked program must stop before main with one
//! line naming what is wrong, status 1) and hostile socket arguments
//! through the hijack (bad tool arguments: tools/tests/bad_args.rs),
//! whose errno must be the host kernel's for the same call (the same
//! Python run without the hijack). Every run has a time limit (a hang
//! fails) and is checked for a crash signal or a Rust panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use testkit::hijack::{with_config, PYTHON};
use testkit::images::{make_image, run, Scratch};
use testkit::wire::pattern;
use testkit::{no_crash, run_limited};

const LIMIT: Duration = Duration::from_secs(20);

fn here(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Images for the disk cases: a good ext4, a file of zeros, random bytes,
/// an ext4 with its superblock wiped.
struct Images {
    good: PathBuf,
    zeros: PathBuf,
    random: PathBuf,
    no_sb: PathBuf,
}

fn images(t: &Scratch) -> Images {
    let good = t.path("good.img");
    make_image(&good, "ext4", 16);
    let zeros = t.path("zeros.img");
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let random = t.path("random.img");
    std::fs::write(&random, pattern(8 << 20, 0x9e37_79b9_7f4a_7c15)).unwrap();
    let no_sb = t.path("nosb.img");
    let mut img = std::fs::read(&good).unwrap();
    img[1024..3072].fill(0);
    std::fs::write(&no_sb, img).unwrap();
    Images {
        good,
        zeros,
        random,
        no_sb,
    }
}

/// A config with one disk, `image`, plus `extra` keys.
fn disk(image: &Path, extra: &str) -> String {
    format!(
        r#"{{"disks":[{{"image":"{}","fstype":"ext4","mount":"/d"{extra}}}]}}"#,
        image.display()
    )
}

/// (config text, what stderr must say).
fn config_cases(t: &Scratch, im: &Images) -> Vec<(String, String)> {
    let deep = format!("{}1{}", r#"{"a":"#.repeat(300), "}".repeat(300));
    let tap = |extra: &str| format!(r#"{{"interfaces":[{{"type":"tap","param":"tap0"{extra}}}]}}"#);
    let mut v: Vec<(String, &str)> = vec![
        ("".into(), "EOF while parsing"),
        ("{".into(), "invalid JSON"),
        (r#"{"interfaces":[],}"#.into(), "trailing comma"),
        (r#""a string""#.into(), "expected an object, found a string"),
        ("[1,2]".into(), "expected an object"),
        (deep, "recursion limit exceeded"),
        (
            r#"{"interfacez":[]}"#.into(),
            r#"did you mean "interfaces""#,
        ),
        (r#"{"debug":1,"debug":2}"#.into(), "debug"),
        (
            r#"{"interfaces":5}"#.into(),
            "interfaces: expected an array",
        ),
        (r#"{"debug":99999999999999999999999}"#.into(), "debug:"),
        (tap(r#","mtu":"99999999999""#), "interfaces[0].mtu"),
        (tap(r#","mtu":-1"#), "interfaces[0].mtu"),
        (
            tap(r#","ip":"300.1.1.1","masklen":"24""#),
            "is not an IPv4 address",
        ),
        (
            tap(r#","ip":"10.0.0.1","masklen":"33""#),
            "interfaces[0].masklen",
        ),
        (tap(r#","ip":"10.0.0.1""#), "masklen"),
        (
            tap(r#","ipv6":"fz::1","masklen6":"64""#),
            "is not an IPv6 address",
        ),
        (tap(r#","mac":"zz:00:00:00:00:01""#), "interfaces[0].mac"),
        (tap(r#","mac":"00:11:22:33:44""#), "interfaces[0].mac"),
        (
            tap(r#","ip":"10.0.0.1","masklen":"24","ifgateway":"10.9.0.1""#),
            "interfaces[0].ifgateway",
        ),
        (
            r#"{"interfaces":[{"type":"tap","param":"tap0"},{"type":"tap","param":"tap0"}]}"#
                .into(),
            "already used",
        ),
        (
            r#"{"interfaces":[{"type":"tap","param":"averyveryverylongtap0"}]}"#.into(),
            "longer than 15 bytes",
        ),
        // Absent interfaces (nothing is created: a raw socket on a missing
        // NIC, a macvtap device node that does not exist).
        (
            r#"{"interfaces":[{"type":"raw","param":"lklnosuch0"}]}"#.into(),
            "no such interface",
        ),
        (
            r#"{"interfaces":[{"type":"macvtap","param":"/dev/tap99999"}]}"#.into(),
            "does not exist",
        ),
        (
            r#"{"interfaces":[{"type":"bogus","param":"x"}]}"#.into(),
            "not a backend type",
        ),
        (
            r#"{"gateway":"10.0.0.1"}"#.into(),
            "not on any configured link",
        ),
        (r#"{"nameserver":"1.2.3.4.5"}"#.into(), "nameserver"),
        (r#"{"delay_main":"-5"}"#.into(), "delay_main"),
        (
            r#"{"routes":[{"destination":"10.0.0.0/99","device":"lo"}]}"#.into(),
            "routes[0].destination",
        ),
        (
            r#"{"sysctl":"net.ipv4.nosuch=1"}"#.into(),
            "net.ipv4.nosuch",
        ),
    ]
    .into_iter()
    .collect();
    let mut owned: Vec<(String, String)> = v.drain(..).map(|(c, w)| (c, w.to_owned())).collect();
    owned.push((disk(&t.path("missing.img"), ""), "disks[0].image".into()));
    owned.push((disk(&t.0, ""), "is a directory".into()));
    owned.push((disk(&im.zeros, ""), "disks[0].fstype".into()));
    owned.push((disk(&im.random, ""), "not a ext4 file system".into()));
    owned.push((disk(&im.no_sb, ""), "not a ext4 file system".into()));
    owned.push((disk(&im.good, r#","partition":1"#), "no partition 1".into()));
    owned.push((
        disk(&im.good, r#","readonly":"maybe""#),
        "disks[0].readonly".into(),
    ));
    owned.push((
        disk(&im.good, r#","mount":"relative""#).replace(r#""mount":"/d","#, ""),
        "not an absolute path".into(),
    ));
    owned.push((
        disk(&im.good, "").replace("ext4", "nosuchfs"),
        "unknown file-system type".into(),
    ));
    owned
}

/// Runs the hijacked program with `json` as its config: it must stop
/// before main with status 1 and one line saying `want`, no crash, no hang.
fn stops_before_main(config: &Path, json: &str, want: &str) {
    std::fs::write(config, json).unwrap();
    let show = if json.len() > 80 { &json[..80] } else { json };
    let out = run_limited(
        with_config(config, &[PYTHON, "-c", "print('main ran')"]),
        LIMIT,
    )
    .unwrap_or_else(|| panic!("{show}: hang"));
    no_crash(show, &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{show}: {stdout}{stderr}");
    assert!(!stdout.contains("main ran"), "{show}: main ran");
    assert!(
        stderr.contains(want)
            && stderr.starts_with("lkl-hijack: ")
            && stderr.trim_end().lines().count() == 1,
        "{show}: want one line with {want:?}, got:\n{stderr}"
    );
    println!("{show:<60} -> {}", stderr.trim());
}

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn hostile_configs_stop_before_main_with_one_line() {
    let t = Scratch::new("cfg");
    let im = images(&t);
    let cases = config_cases(&t, &im);
    let config = t.path("c.json");
    for (json, want) in &cases {
        stops_before_main(&config, json, want);
    }
    let n = cases.len();
    println!("{n} bad configs, each stopped before main with its one-line error");
    assert!(n >= 30, "only {n} cases");
}

/// An image that cannot be opened for writing, even by root.
#[testkit::needs(python3, mkfs_ext4, immutable)]
#[test]
fn immutable_image_stops_before_main() {
    let t = Scratch::new("imm");
    let imm = t.path("immutable.img");
    make_image(&imm, "ext4", 16);
    run("chattr", &["+i", imm.to_str().unwrap()]);
    let config = t.path("c.json");
    let result = std::panic::catch_unwind(|| {
        stops_before_main(&config, &disk(&imm, ""), "cannot be opened read-write")
    });
    run("chattr", &["-i", imm.to_str().unwrap()]);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// Runs a Python file on the host and under the hijack (no network
/// config: loopback only).
fn both(t: &Scratch, script: &Path, args: &[&str]) -> (Output, Output) {
    let config = t.path("empty.json");
    std::fs::write(&config, "{}").unwrap();
    let mut host = Command::new(PYTHON);
    host.arg(script).args(args);
    let host = run_limited(host, LIMIT).expect("host run hung");
    let mut a = vec![PYTHON, script.to_str().unwrap()];
    a.extend_from_slice(args);
    let ours =
        run_limited(with_config(&config, &a), LIMIT).unwrap_or_else(|| panic!("{args:?}: hang"));
    (host, ours)
}

#[testkit::needs(python3)]
#[test]
fn hostile_socket_arguments_fail_as_on_the_host() {
    let t = Scratch::new("sock");
    let (host, ours) = both(&t, &here("tests/bad_input/sockets.py"), &[]);
    assert!(
        host.status.success(),
        "{}",
        String::from_utf8_lossy(&host.stderr)
    );
    no_crash("sockets.py", &ours);
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let h: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&host.stdout).unwrap();
    let o: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&ours.stdout).unwrap();
    let mut mismatches = Vec::new();
    for (k, hv) in &h {
        let ov = o.get(k).cloned().unwrap_or_default();
        println!("{k:<45} host {hv:<16} hijacked {ov}");
        if &ov != hv {
            mismatches.push(format!("{k}: host {hv}, hijacked {ov}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    println!(
        "{} socket calls with hostile arguments: same errno as the host",
        h.len()
    );
}

/// Cases where we knowingly differ (none since the kernel's copies of
/// program memory became fault-safe: docs/uaccess.md).
const KNOWN: &[&str] = &[];

#[testkit::needs(python3)]
#[test]
fn bad_pointers_get_efault_as_on_the_host() {
    let t = Scratch::new("ptr");
    let script = here("tests/bad_input/pointers.py");
    let list = Command::new(PYTHON).arg(&script).output().unwrap();
    let cases: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(cases.len() >= 10, "{cases:?}");
    let mut mismatches = Vec::new();
    for case in &cases {
        let (host, ours) = both(&t, &script, &[case]);
        let h = String::from_utf8_lossy(&host.stdout).trim().to_owned();
        use std::os::unix::process::ExitStatusExt;
        let o = match ours.status.signal() {
            Some(s) => format!("killed by signal {s}"),
            None => String::from_utf8_lossy(&ours.stdout).trim().to_owned(),
        };
        let known = KNOWN.contains(&case.as_str());
        println!(
            "{case:<35} host {h:<14} hijacked {o}{}",
            if known { "   (known difference)" } else { "" }
        );
        if h != o && !known {
            mismatches.push(format!("{case}: host {h}, hijacked {o}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
