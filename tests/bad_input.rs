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
use testkit::hijack::{library, PYTHON};
use testkit::images::{mkfs_ext4, Scratch};
use testkit::{no_crash, run_limited};

const LIMIT: Duration = Duration::from_secs(20);

fn here(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn hijacked(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(here("bin/lkl-hijack.sh"));
    cmd.args(args)
        .env("LKL_HIJACK_LIB", library())
        .env("LKL_HIJACK_CONFIG_FILE", config)
        .current_dir(std::env::temp_dir());
    cmd
}

/// Images for the disk cases: a good ext4, a file of zeros, random bytes,
/// an ext4 with its superblock wiped, and an immutable one (cannot be
/// opened for writing even by root) if the file system supports it.
struct Images {
    good: PathBuf,
    zeros: PathBuf,
    random: PathBuf,
    no_sb: PathBuf,
    immutable: Option<PathBuf>,
}

fn images(t: &Scratch) -> Option<Images> {
    let good = t.path("good.img");
    if !mkfs_ext4(&good, 16) {
        println!("skipped the disk cases: mkfs.ext4 cannot run (bin/setup.sh)");
        return None;
    }
    let zeros = t.path("zeros.img");
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let random = t.path("random.img");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..(8 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let no_sb = t.path("nosb.img");
    let mut img = std::fs::read(&good).unwrap();
    img[1024..3072].fill(0);
    std::fs::write(&no_sb, img).unwrap();
    let imm = t.path("immutable.img");
    std::fs::copy(&good, &imm).unwrap();
    let immutable = Command::new("chattr")
        .arg("+i")
        .arg(&imm)
        .status()
        .is_ok_and(|s| s.success())
        .then_some(imm);
    if immutable.is_none() {
        println!("no immutable-image case: chattr +i does not work here");
    }
    Some(Images {
        good,
        zeros,
        random,
        no_sb,
        immutable,
    })
}

/// (config text, what stderr must say).
fn config_cases(t: &Scratch, im: Option<&Images>) -> Vec<(String, String)> {
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
            r#"{"routes":[{"destination":"10.0.0.0/99"}]}"#.into(),
            "routes[0].destination",
        ),
        (
            r#"{"sysctl":"net.ipv4.nosuch=1"}"#.into(),
            "net.ipv4.nosuch",
        ),
    ]
    .into_iter()
    .collect();
    let disk = |image: &Path, extra: &str| {
        format!(
            r#"{{"disks":[{{"image":"{}","fstype":"ext4","mount":"/d"{extra}}}]}}"#,
            image.display()
        )
    };
    let mut owned: Vec<(String, String)> = v.drain(..).map(|(c, w)| (c, w.to_owned())).collect();
    owned.push((disk(&t.path("missing.img"), ""), "disks[0].image".into()));
    owned.push((disk(&t.0, ""), "is a directory".into()));
    if let Some(im) = im {
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
        if let Some(imm) = &im.immutable {
            owned.push((disk(imm, ""), "cannot be opened read-write".into()));
        }
    }
    owned
}

#[test]
fn hostile_configs_stop_before_main_with_one_line() {
    let t = Scratch::new("cfg");
    let im = images(&t);
    let cases = config_cases(&t, im.as_ref());
    let config = t.path("c.json");
    let mut n = 0;
    for (json, want) in &cases {
        std::fs::write(&config, json).unwrap();
        let show = if json.len() > 80 { &json[..80] } else { json };
        let out = run_limited(
            hijacked(&config, &[PYTHON, "-c", "print('main ran')"]),
            LIMIT,
        )
        .unwrap_or_else(|| panic!("{show}: hang"));
        no_crash(show, &out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{show}: {stdout}{stderr}");
        assert!(!stdout.contains("main ran"), "{show}: main ran");
        assert!(
            stderr.contains(want.as_str())
                && stderr.starts_with("lkl-hijack: ")
                && stderr.trim_end().lines().count() == 1,
            "{show}: want one line with {want:?}, got:\n{stderr}"
        );
        println!("{show:<60} -> {}", stderr.trim());
        n += 1;
    }
    if let Some(imm) = im.as_ref().and_then(|i| i.immutable.as_ref()) {
        let _ = Command::new("chattr").arg("-i").arg(imm).status();
    }
    println!("{n} bad configs, each stopped before main with its one-line error");
    assert!(n >= 30 || im.is_none(), "only {n} cases");
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
        run_limited(hijacked(&config, &a), LIMIT).unwrap_or_else(|| panic!("{args:?}: hang"));
    (host, ours)
}

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
