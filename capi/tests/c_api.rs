//! The C API as a C program sees it: `bin/setup.sh --prefix` installs the
//! library into a temporary prefix, the C programs under `tests/c/` are
//! compiled there with `pkg-config --cflags --libs lkl` (never from the
//! source tree) and run. LKL's own test patterns: a boot with system
//! calls and the JSON config (`boot.c`), an ext4 image mounted through
//! `lkl_disk_add`/`lkl_mount_dev` (`disk.c`), a UDP socket over a tap in a
//! network namespace of the test's own (`tap.c`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use testkit::images::{self, Scratch};
use testkit::netns::{in_netns, Netns};

/// The release (or debug) folder cargo built this test into.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf()
}

/// Installs into `scratch/prefix` (removed with the scratch folder) with
/// `bin/setup.sh --prefix DIR --no-build`: what this test's build made.
fn install(scratch: &Scratch) -> PathBuf {
    let dir = scratch.path("prefix");
    let profile = profile_dir();
    let target = profile.parent().expect("target dir");
    let out = Command::new(testkit::repo().join("bin/setup.sh"))
        .arg("--prefix")
        .arg(&dir)
        .arg("--no-build")
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run bin/setup.sh");
    assert!(
        out.status.success(),
        "bin/setup.sh --prefix failed (build the workspace first: cargo build --release --workspace):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Compiles `tests/c/<name>.c` against the installed library; `static`
/// links liblkl.a instead of liblkl.so. Returns the program.
fn compile(name: &str, scratch: &Scratch, static_lib: bool) -> PathBuf {
    let prefix = &install(scratch);
    let pc = prefix.join("lib/pkgconfig");
    let mut args = vec!["--cflags", "--libs"];
    if static_lib {
        args.insert(0, "--static");
    }
    let flags = Command::new("pkg-config")
        .args(&args)
        .arg("lkl")
        .env("PKG_CONFIG_PATH", &pc)
        .output()
        .expect("pkg-config (apt-get install pkg-config; bin/setup.sh installs it)");
    assert!(
        flags.status.success(),
        "pkg-config --cflags --libs lkl: {}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    assert!(
        flags.contains(&prefix.join("include").display().to_string()),
        "the flags must point into the prefix: {flags}"
    );
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    let exe = scratch.path(
        if static_lib {
            format!("{name}-static")
        } else {
            name.to_string()
        }
        .as_str(),
    );
    let mut cc = Command::new("cc");
    cc.args(["-Wall", "-Wextra", "-Werror", "-O1"])
        .arg(&src)
        .arg("-o")
        .arg(&exe);
    for f in flags.split_whitespace() {
        if static_lib && f == "-llkl" {
            cc.arg(prefix.join("lib/liblkl.a"));
        } else {
            cc.arg(f);
        }
    }
    let out = cc.output().expect("run cc");
    assert!(
        out.status.success(),
        "cc {name}.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs `exe` with a time limit; its output as text (stdout, then stderr).
fn run(exe: &Path, args: &[&str]) -> (Output, String) {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    let out = testkit::run_limited(cmd, Duration::from_secs(120))
        .unwrap_or_else(|| panic!("{} did not finish in 120 s", exe.display()));
    let text = format!(
        "{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[testkit::needs(cc)]
#[test]
fn boot_syscalls_and_config_from_c() {
    let scratch = Scratch::new("capi-boot");
    let exe = compile("boot", &scratch, false);
    let (out, text) = run(&exe, &[]);
    assert!(out.status.success() && text.contains("ALL OK"), "{text}");
    // The config error was worded on stderr, with its suggestion.
    assert!(text.contains("did you mean \"gateway\""), "{text}");
}

#[testkit::needs(cc)]
#[test]
fn static_library_links_and_boots() {
    let scratch = Scratch::new("capi-static");
    let exe = compile("boot", &scratch, true);
    let needed = Command::new("readelf")
        .arg("-d")
        .arg(&exe)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(!needed.contains("liblkl.so"), "linked liblkl.so: {needed}");
    let (out, text) = run(&exe, &[]);
    assert!(out.status.success() && text.contains("ALL OK"), "{text}");
}

#[testkit::needs(cc, mkfs_ext4)]
#[test]
fn files_on_an_ext4_disk_from_c() {
    let scratch = Scratch::new("capi-disk");
    let image = scratch.path("disk.img");
    images::make_image(&image, "ext4", 32);
    let host_file = scratch.path("host.txt");
    std::fs::write(&host_file, "from the host\n").expect("host file");
    let image_s = image.to_str().expect("utf-8 path");
    images::run(
        "debugfs",
        &[
            "-w",
            "-R",
            &format!("write {} host.txt", host_file.display()),
            image_s,
        ],
    );
    let exe = compile("disk", &scratch, false);
    let (out, text) = run(&exe, &[image_s]);
    assert!(out.status.success(), "{text}");
    for want in [
        "blkdev 0 major 254",
        "mount with a short buffer: refused",
        "mounted at /mnt/0000fe00",
        "write 23",
        "mkdir 0",
        "read host file: 14 'from the host",
        "umount 0",
        "read-only mount 0, create there: EROFS",
        "halt 0",
    ] {
        assert!(text.contains(want), "missing '{want}':\n{text}");
    }
    // What the C program wrote is in the image, and the image is clean.
    images::fsck_clean(&image, "ext4");
    let cat = images::run("debugfs", &["-R", "cat /from-c.txt", image_s]);
    assert!(cat.contains("written through liblkl"), "{cat}");
    let ls = images::run("debugfs", &["-R", "ls /", image_s]);
    assert!(ls.contains("dir"), "{ls}");
}

const TAP: &str = "lklcapi0";
const HOST_IP: &str = "192.168.119.1";
const LKL_IP: &str = "192.168.119.2";
const PORT: u16 = 47019;

/// Runs the C program `exe` for tap `tap` while the host's end of the tap
/// answers the first datagram it gets with `answer`; the program's output,
/// the datagram and its sender.
fn udp_exchange(exe: &Path, tap: &str, answer: &'static [u8]) -> (Output, String, String, String) {
    let sock = std::net::UdpSocket::bind((HOST_IP, PORT)).expect("bind on the tap's address");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 128];
        let (n, from) = sock
            .recv_from(&mut buf)
            .expect("a datagram from the kernel");
        sock.send_to(answer, from).expect("answer");
        (
            String::from_utf8_lossy(&buf[..n]).into_owned(),
            from.to_string(),
        )
    });
    let (out, text) = run(exe, &[tap, LKL_IP, HOST_IP, &PORT.to_string()]);
    let (got, from) = echo.join().expect("host side");
    (out, text, got, from)
}

fn tap_setup(ns: &Netns) -> Result<(), String> {
    ns.lo_up()?;
    ns.add_tap(TAP, false, &[&format!("{HOST_IP}/24")])
}

#[testkit::needs(root, tun, cc)]
#[test]
fn udp_over_a_tap_from_c() {
    in_netns("udp_over_a_tap_from_c", "capitap", tap_setup, || {
        let scratch = Scratch::new("capi-tap");
        let exe = compile("tap", &scratch, false);
        let (out, text, got, from) = udp_exchange(&exe, TAP, b"pong from the host");
        assert!(out.status.success(), "{text}");
        assert_eq!(got, "ping from liblkl", "{text}");
        assert_eq!(from, format!("{LKL_IP}:{}", PORT + 1), "{text}");
        for want in [
            "if_up 0",
            "set_ipv4 0",
            "set_mtu 0",
            "gateway 0",
            "bind 0",
            "sendto 16",
            "poll 1",
            &format!("recvfrom 18 'pong from the host' from {HOST_IP}"),
            "halt 0",
        ] {
            assert!(text.contains(want), "missing '{want}':\n{text}");
        }
        println!("{text}");
    });
}

/// What `--prefix` installs, and that the installed launcher finds the
/// installed library (not the build's).
#[test]
fn install_layout_and_launcher() {
    let scratch = Scratch::new("capi-layout");
    let prefix = install(&scratch);
    for f in [
        "bin/lkl-hijack.sh",
        "bin/cptofs",
        "bin/cpfromfs",
        "bin/fs2tar",
        "bin/lklfuse",
        "bin/net-test",
        "bin/lkl-boot",
        "lib/liblkl-hijack.so",
        "lib/liblkl_hijack.so",
        "lib/liblkl.so",
        "lib/liblkl.a",
        "lib/pkgconfig/lkl.pc",
        "include/lkl.h",
        "include/lkl_host.h",
        "include/lkl/asm/syscalls.h",
        "include/lkl/linux/in.h",
        "share/man/man1/cptofs.1",
        "share/man/man1/lklfuse.1",
        "share/man/man1/lkl-boot.1",
    ] {
        assert!(prefix.join(f).exists(), "{f} not installed");
    }
    let man = std::fs::read_to_string(prefix.join("share/man/man1/cptofs.1")).unwrap_or_default();
    assert!(
        man.starts_with(".TH CPTOFS 1") && man.contains("--mount-options"),
        "{man}"
    );
    // The installed launcher, with nothing pointing at the build: it must
    // find DIR/lib/liblkl-hijack.so.
    let out = Command::new(prefix.join("bin/lkl-hijack.sh"))
        .arg("--check-config")
        .env_remove("LKL_HIJACK_LIB")
        .env_remove("LKL_HIJACK_CONFIG_FILE")
        .current_dir(&*scratch)
        .output()
        .expect("run the installed launcher");
    assert!(
        out.status.success(),
        "installed lkl-hijack.sh --check-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // LKL's place for the launcher.
    let out = Command::new(testkit::repo().join("tools/lkl/bin/lkl-hijack.sh"))
        .arg("--help")
        .output()
        .expect("run tools/lkl/bin/lkl-hijack.sh");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--config FILE"));
    // setup.sh --help lists --prefix; a bad argument is refused.
    let help = Command::new(testkit::repo().join("bin/setup.sh"))
        .arg("--help")
        .output()
        .expect("setup.sh --help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--prefix DIR"));
    let bad = Command::new(testkit::repo().join("bin/setup.sh"))
        .arg("--frobnicate")
        .output()
        .expect("setup.sh --frobnicate");
    assert_eq!(bad.status.code(), Some(2));
}

const TAP2: &str = "lklcapi1";

#[testkit::needs(root, tun, cc)]
#[test]
fn tap_from_the_json_config_from_c() {
    let setup = |ns: &Netns| {
        ns.lo_up()?;
        ns.add_tap(TAP2, false, &[&format!("{HOST_IP}/24")])
    };
    in_netns("tap_from_the_json_config_from_c", "capicfg", setup, || {
        let scratch = Scratch::new("capi-tapcfg");
        let exe = compile("tap_config", &scratch, false);
        let (out, text, got, _) = udp_exchange(&exe, TAP2, b"config pong");
        assert!(out.status.success(), "{text}");
        assert_eq!(got, "config ping", "{text}");
        for want in [
            "load 0",
            "pre 0",
            "start 0",
            "post 0",
            "sendto 11",
            "poll 1",
            "recv 11 'config pong'",
            "halt 0",
        ] {
            assert!(text.contains(want), "missing '{want}':\n{text}");
        }
    });
}
