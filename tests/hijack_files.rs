//! File calls of an unmodified program routed by path: under a configured
//! disk's mount point they go to the kernel (and land in the image), every
//! other path stays on the host. Images are made with the host's
//! mkfs.ext4; what the program wrote is checked afterwards with the host's
//! e2fsck and with cpfromfs.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use testkit::hijack::*;
use testkit::images::{fsck_clean, make_image, Scratch};
use testkit::netns::in_netns;

fn hijacked(config: &Path, args: &[&str]) -> Output {
    with_config(config, args)
        .output()
        .expect("run the hijacked program")
}

/// Copies `src` into the root of the ext4 `image` with cptofs.
fn cptofs(image: &Path, src: &Path) {
    let o = Command::new(testkit::workspace_bin("cptofs"))
        .args(["-t", "ext4", "-i"])
        .arg(image)
        .arg(src)
        .arg("/")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn write_config(path: &Path, json: &str) {
    std::fs::write(path, json).unwrap();
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn assert_ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What the program does: writes (text, binary, through stdio via
/// ctypes), fsyncs, renames, lists three ways, stats, chmods, symlinks,
/// reads back, works relative to a working directory on the disk and on
/// the host, and finally prints a manifest of what the disk should hold.
const SCRIPT: &str = r#"
import ctypes, errno, hashlib, json, os, stat, subprocess, sys
M, H = sys.argv[1], sys.argv[2]
# Host paths stay on the host.
with open(os.path.join(H, "host.txt"), "w") as f: f.write("host side\n")
assert os.listdir(H) == ["host.txt"], os.listdir(H)
# Writes, fsync, rename.
data = bytes((i * 7 + 3) % 251 for i in range(3 << 20))
with open(M + "/tmp.bin", "wb") as f:
    f.write(data); f.flush(); os.fsync(f.fileno())
os.rename(M + "/tmp.bin", M + "/data.bin")
assert not os.path.exists(M + "/tmp.bin")
os.makedirs(M + "/a/b/c")
for i in range(20):
    with open(f"{M}/a/b/f{i:02}.txt", "w") as f: f.write(f"file {i}\n" * (i + 1))
with open(M + "/a/b/c/empty", "w"): pass
# Listing: listdir, scandir, walk (and a listing by descriptor).
assert sorted(os.listdir(M)) == ["a", "data.bin", "lost+found"], os.listdir(M)
ents = {e.name: (e.is_dir(), e.is_file()) for e in os.scandir(M + "/a/b")}
assert ents["c"] == (True, False) and ents["f00.txt"] == (False, True) and len(ents) == 21, ents
walked = sorted((os.path.relpath(d, M), sorted(fs)) for d, _, fs in os.walk(M) if "lost+found" not in d)
assert walked[0] == (".", ["data.bin"]) and walked[2][0] == "a/b" and len(walked[2][1]) == 20, walked
fd = os.open(M + "/a", os.O_RDONLY | os.O_DIRECTORY)
assert os.listdir(fd) == ["b"]; assert os.stat("b/f01.txt", dir_fd=fd).st_size == 14; os.close(fd)
# Stat, chmod, symlink, readlink, hard link, utime.
st = os.stat(M + "/data.bin"); assert st.st_size == len(data) and stat.S_ISREG(st.st_mode), st
os.chmod(M + "/a/b/f03.txt", 0o600); assert stat.S_IMODE(os.stat(M + "/a/b/f03.txt").st_mode) == 0o600
os.symlink("b/f01.txt", M + "/a/link"); assert os.readlink(M + "/a/link") == "b/f01.txt"
assert os.path.islink(M + "/a/link") and open(M + "/a/link").read() == "file 1\nfile 1\n"
os.utime(M + "/a/b/f04.txt", (1_600_000_000, 1_600_000_000)); assert os.stat(M + "/a/b/f04.txt").st_mtime == 1_600_000_000
os.link(M + "/a/b/f05.txt", M + "/a/hard"); assert os.stat(M + "/a/hard").st_nlink == 2
os.unlink(M + "/a/b/f19.txt"); os.mkdir(M + "/gone"); os.rmdir(M + "/gone"); assert not os.path.exists(M + "/gone")
# Across worlds: EXDEV, and a copy through the program's own reads and writes.
try: os.rename(M + "/a/hard", H + "/hard"); raise SystemExit("rename across worlds worked")
except OSError as e: assert e.errno == errno.EXDEV, e
import shutil
shutil.copyfile(M + "/data.bin", H + "/copy.bin"); assert open(H + "/copy.bin", "rb").read() == data
shutil.copyfile(H + "/host.txt", M + "/from-host.txt")
# Reads back, seek, pread.
with open(M + "/data.bin", "rb") as f:
    assert f.read() == data; f.seek(1000); assert f.read(10) == data[1000:1010]
    assert os.pread(f.fileno(), 5, 2000) == data[2000:2005]
# Relative paths and working directories.
os.chdir(M + "/a/b"); assert os.getcwd() == M + "/a/b", os.getcwd()
assert open("f02.txt").read().startswith("file 2") and os.path.exists("../link")
with open("rel.txt", "w") as f: f.write("relative\n")
os.chdir(".."); assert sorted(os.listdir(".")) == ["b", "hard", "link"], os.listdir(".")
os.chdir(H); assert os.getcwd() == H and open("host.txt").read() == "host side\n"
assert os.path.exists(os.path.relpath(M + "/a/b/rel.txt", H)), os.path.relpath(M, H)
# stdio through the kernel (ctypes reaches the preloaded fopen).
libc = ctypes.CDLL(None, use_errno=True)
libc.fopen.restype = ctypes.c_void_p; libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fputs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]; libc.fclose.argtypes = [ctypes.c_void_p]
fp = libc.fopen((M + "/stdio.txt").encode(), b"w"); assert fp
libc.fputs(b"written by fputs\n", fp); assert libc.fclose(fp) == 0
# A shell's builtins write through stdio onto a descriptor dup2'd from a
# disk file (the standard stream follows its descriptor).
r = subprocess.run(["bash", "-c", "echo builtin > %s/echo.txt; printf '%%s\\n' two >> %s/echo.txt; cat %s/echo.txt" % (M, M, M)],
                   capture_output=True, text=True)
assert r.returncode == 0 and r.stdout == "builtin\ntwo\n", r
os.unlink(M + "/echo.txt")
# Statvfs and mmap.
assert os.statvfs(M).f_blocks > 0
import mmap
with open(M + "/data.bin", "rb") as f:
    try: mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); raise SystemExit("mmap worked")
    except OSError as e: assert e.errno == errno.ENODEV, e
# sendfile from a disk file (and from a host file) to a kernel socket.
import socket, threading
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
cli = socket.create_connection(srv.getsockname()); acc, _ = srv.accept()
for path in (M + "/data.bin", H + "/copy.bin"):
    got = bytearray()
    def drain():
        while len(got) < len(data): got.extend(cli.recv(1 << 16))
    th = threading.Thread(target=drain); th.start()
    with open(path, "rb") as f: sent = acc.sendfile(f)
    th.join(); assert sent == len(data) and bytes(got) == data, (path, sent, len(got))
for x in (cli, acc, srv): x.close()
# A hijacked child (the tree's kernel serves it too) sees the same disk.
import hashlib
r = subprocess.run([sys.executable, "-c", "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())", M + "/data.bin"], capture_output=True, text=True)
assert r.returncode == 0 and r.stdout.strip() == hashlib.sha256(data).hexdigest(), r
# The manifest: every regular file on the disk with its digest.
man = {}
for d, _, fs in os.walk(M):
    for n in fs:
        p = os.path.join(d, n)
        if not os.path.islink(p):
            man[os.path.relpath(p, M)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
print("MANIFEST " + json.dumps(man, sort_keys=True))
print("files ok")
"#;

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn python_files_on_a_disk() {
    let t = Scratch::new("py");
    let image = t.path("fs.img");
    make_image(&image, "ext4", 64);
    let host = t.path("host");
    std::fs::create_dir_all(&host).unwrap();
    // The mount point is a kernel path: nothing of it exists on the host.
    let mount = t.path("disk");
    let config = t.path("cfg.json");
    write_config(
        &config,
        &format!(
            r#"{{"disks":[{{"image":"{}","fstype":"ext4","mount":"{}"}}]}}"#,
            image.display(),
            mount.display()
        ),
    );
    let start = Instant::now();
    let out = hijacked(
        &config,
        &[
            PYTHON,
            "-c",
            SCRIPT,
            mount.to_str().unwrap(),
            host.to_str().unwrap(),
        ],
    );
    let stdout = assert_ok(&out);
    assert!(stdout.contains("files ok"), "{stdout}");
    println!("hijacked python ran in {:?}", start.elapsed());
    // Nothing of the disk leaked to the host, the host files are there.
    assert!(!mount.exists(), "the mount point appeared on the host");
    let mut host_files: Vec<String> = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host_files.sort();
    assert_eq!(host_files, ["copy.bin", "host.txt"]);

    fsck_clean(&image, "ext4");

    // cpfromfs sees what the program wrote.
    let manifest: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("MANIFEST "))
            .expect("manifest line"),
    )
    .unwrap();
    let copy = t.path("copy");
    let o = Command::new(testkit::workspace_bin("cpfromfs"))
        .args(["-t", "ext4", "-i"])
        .arg(&image)
        .arg("/")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (rel, digest) in &manifest {
        let data = std::fs::read(copy.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(&sha256_hex(&data), digest.as_str().unwrap(), "{rel}");
    }
    assert_eq!(manifest.len(), 25, "{manifest:?}");
    assert_eq!(
        std::fs::read_link(copy.join("a/link")).unwrap(),
        Path::new("b/f01.txt")
    );
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(copy.join("a/b/f03.txt")).unwrap();
    assert_eq!(m.mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(copy.join("stdio.txt")).unwrap(),
        "written by fputs\n"
    );
    assert_eq!(
        std::fs::read_to_string(copy.join("a/b/rel.txt")).unwrap(),
        "relative\n"
    );
    println!(
        "{} files checked with cpfromfs, e2fsck clean",
        manifest.len()
    );
}

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn read_only_disk_refuses_writes() {
    let t = Scratch::new("ro");
    let image = t.path("fs.img");
    make_image(&image, "ext4", 32);
    let src = t.path("in.txt");
    std::fs::write(&src, "from the host\n").unwrap();
    cptofs(&image, &src);
    let before = sha256_hex(&std::fs::read(&image).unwrap());
    let config = t.path("cfg.json");
    write_config(
        &config,
        &format!(
            r#"{{"disks":[{{"image":"{}","fstype":"ext4","mount":"/ro","readonly":true}}]}}"#,
            image.display()
        ),
    );
    let script = r#"
import errno, os
assert open("/ro/in.txt").read() == "from the host\n"
for name, f in [("create", lambda: open("/ro/new", "w")), ("mkdir", lambda: os.mkdir("/ro/d")),
                ("unlink", lambda: os.unlink("/ro/in.txt")), ("open rw", lambda: open("/ro/in.txt", "r+")),
                ("chmod", lambda: os.chmod("/ro/in.txt", 0o600)), ("rename", lambda: os.rename("/ro/in.txt", "/ro/x"))]:
    try: f(); raise SystemExit(name + " worked on a read-only disk")
    except OSError as e: assert e.errno == errno.EROFS, (name, e)
print("erofs ok")
"#;
    let out = hijacked(&config, &[PYTHON, "-c", script]);
    assert!(assert_ok(&out).contains("erofs ok"));
    assert_eq!(
        before,
        sha256_hex(&std::fs::read(&image).unwrap()),
        "a read-only disk's image changed"
    );
}

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn bad_disk_config_stops_before_main() {
    let t = Scratch::new("bad");
    let image = t.path("fs.img");
    make_image(&image, "ext4", 32);
    let cases = [
        (
            format!(
                r#"{{"disks":[{{"image":"{}","fstype":"ext4","mount":"/d"}}]}}"#,
                t.path("missing.img").display()
            ),
            "disks[0].image",
            "does not exist",
        ),
        (
            format!(
                r#"{{"disks":[{{"image":"{}","fstype":"xfs","mount":"/d"}}]}}"#,
                image.display()
            ),
            "disks[0].fstype",
            "not a xfs file system",
        ),
        (
            format!(
                r#"{{"disks":[{{"image":"{0}","fstype":"ext4","mount":"/d","readonly":true}},{{"image":"{0}","fstype":"ext4","mount":"/e","readonly":true,"partition":3}}]}}"#,
                image.display()
            ),
            "disks[1].partition",
            "no partition 3",
        ),
    ];
    for (json, path, why) in cases {
        let config = t.path("cfg.json");
        write_config(&config, &json);
        let out = hijacked(&config, &[PYTHON, "-c", "print('main ran')"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{json}: {stdout}{stderr}");
        assert!(!stdout.contains("main ran"), "main must not run: {json}");
        assert!(
            stderr.contains(path) && stderr.contains(why) && stderr.lines().count() == 1,
            "{json}: {stderr}"
        );
        println!("{}", stderr.trim());
    }
}

#[testkit::needs(root, tun, python3, mkfs_ext4, curl)]
#[test]
fn http_server_serves_its_root_from_the_image() {
    in_netns(
        "http_server_serves_its_root_from_the_image",
        "hfhttp",
        |ns| {
            ns.lo_up()?;
            ns.add_tap("tap0", false, &["192.168.115.1/24"])
        },
        || {
            let t = Scratch::new("http");
            let image = t.path("fs.img");
            make_image(&image, "ext4", 64);
            let payload = testkit::wire::pattern(5 << 20, 0x5eed);
            let want = sha256_hex(&payload);
            let src = t.path("payload.bin");
            std::fs::write(&src, &payload).unwrap();
            cptofs(&image, &src);
            let config = t.path("cfg.json");
            write_config(
                &config,
                &format!(
                    r#"{{"interfaces":[{{"type":"tap","param":"tap0","ip":"192.168.115.2","masklen":"24"}}],
                        "disks":[{{"image":"{}","fstype":"ext4","mount":"/srv/www"}}]}}"#,
                    image.display()
                ),
            );
            let server = with_config(
                &config,
                &[
                    PYTHON,
                    "-m",
                    "http.server",
                    "8000",
                    "--bind",
                    "192.168.115.2",
                    "--directory",
                    "/srv/www",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the hijacked server");
            let got = t.path("got.bin");
            let deadline = Instant::now() + Duration::from_secs(30);
            let fetched = loop {
                let o = Command::new("curl")
                    .args(["-sf", "--max-time", "20", "-o"])
                    .arg(&got)
                    .arg("http://192.168.115.2:8000/payload.bin")
                    .status()
                    .unwrap();
                if o.success() {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            let listing = Command::new("curl")
                .args(["-sf", "--max-time", "10", "http://192.168.115.2:8000/"])
                .output()
                .unwrap();
            // SIGINT: http.server exits through KeyboardInterrupt, so the
            // library's exit path unmounts the disk.
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(server.id() as i32, libc::SIGINT) };
            let out = server.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(fetched, "no answer from the server\n{stderr}");
            let data = std::fs::read(&got).unwrap();
            assert_eq!(data.len(), payload.len());
            assert_eq!(sha256_hex(&data), want, "payload differs");
            assert!(
                String::from_utf8_lossy(&listing.stdout).contains("payload.bin"),
                "directory listing: {}",
                String::from_utf8_lossy(&listing.stdout)
            );
            fsck_clean(&image, "ext4");
            println!("served {} bytes from the image, SHA-256 {want}", data.len());
        },
    );
}
