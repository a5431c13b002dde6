//! Data durability under SIGKILL. A hijacked python3 writes files on an
//! ext4 disk from its config, each one the careful way (write to a
//! temporary name, fsync, rename into place, fsync the directory) and
//! prints `DONE name sha256` only after the last fsync returned. It is
//! killed with SIGKILL at a random moment (during boot, mount, journal
//! replay or writes). After every trial, on a copy of the image:
//! `e2fsck -fy` must end with status 0 or 1 (a journal replay, orphan
//! clean-up), a second `e2fsck -fn` must find it clean, and every file
//! whose DONE line was printed must read back (with the project's
//! cpfromfs) with its digest. The next trial mounts the image the killed
//! one left behind, so the kernel's own journal replay is tested too.
//!
//! `cargo test --test durability` runs 10 trials; the long run is
//! `cargo test --release --test durability -- --ignored` (100 trials,
//! `LKL_DURABILITY_TRIALS=N` for another count, `LKL_DURABILITY_SEED=S`
//! to replay a run). The helper code that runs a hijacked program is a
//! minimal copy of the one in tests/hijack*.rs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::hijack::{library, PYTHON};
use testkit::images::{make_image, Scratch};

use sha2::{Digest, Sha256};

/// A small deterministic generator (xorshift64*), so a failing run can be
/// replayed from its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the hijacked program does: in M/t<trial>/, file after file, each
/// with random content of a random size; old trials' directories are
/// removed first, and a trial stops writing (prints FULL and keeps
/// syncing) after 40 MiB, so the image does not fill up over 100 trials.
const WRITER: &str = r#"
import hashlib, os, random, shutil, sys
M, trial, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in os.listdir(M):
    if d.startswith("t") and int(d[1:]) < keep:
        shutil.rmtree(os.path.join(M, d))
D = os.path.join(M, f"t{trial}")
os.makedirs(D, exist_ok=True)
print("READY", flush=True)
rnd = random.Random(trial)
i = total = 0
while True:
    if total > (40 << 20):
        print("FULL", flush=True)   # this trial's share of the image
        while True: os.fsync(os.open(D, os.O_RDONLY))
    name = f"f{i:05}"
    size = rnd.choice([0, 1, 100, 4096, 5000, 20000, 65536, rnd.randrange(1, 150000)])
    total += size
    data = os.urandom(size)
    tmp = os.path.join(D, name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    view = memoryview(data)
    while view:
        n = os.write(fd, view[:rnd.choice([512, 4096, 65536, 1 << 20])]); view = view[n:]
    os.fsync(fd); os.close(fd)
    os.rename(tmp, os.path.join(D, name))
    dfd = os.open(D, os.O_RDONLY | os.O_DIRECTORY); os.fsync(dfd); os.close(dfd)
    print(f"DONE t{trial}/{name} {hashlib.sha256(data).hexdigest()}", flush=True)
    i += 1
"#;

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One e2fsck run: status and output.
fn e2fsck(args: &[&str], image: &Path) -> (i32, String) {
    let out = Command::new("e2fsck")
        .args(args)
        .arg(image)
        .output()
        .expect("run e2fsck");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// e2fsck lines that report a repair beyond replaying the journal and
/// cleaning up orphans (both normal after a crash). The superblock's
/// total free block and inode counts are not journaled (ext4 keeps them
/// in per-CPU counters and writes them back lazily; the per-group counts
/// are the journaled truth), so after any crash e2fsck recomputes them:
/// "Free blocks count wrong (X, counted=Y)" without "for group" is that,
/// and `e2fsck -p` fixes it silently. A wrong count *for a group* would
/// be a real inconsistency and is not excused.
fn repairs(log: &str) -> Vec<String> {
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    let mut out = Vec::new();
    let mut skip_fix = false;
    for l in lines {
        let summary_count = (l.starts_with("Free blocks count wrong (")
            || l.starts_with("Free inodes count wrong ("))
            && !l.contains("for group");
        if summary_count {
            skip_fix = true;
            continue;
        }
        if skip_fix && l == "Fix? yes" {
            skip_fix = false;
            continue;
        }
        out.push(l);
    }
    out.into_iter()
        .filter(|l| !l.is_empty())
        .filter(|l| {
            !(l.starts_with("Pass ")
                || l.contains("recovering journal")
                || l.contains("Clearing orphaned inode")
                || l.contains("Truncating orphaned inode")
                || l.starts_with("Orphan")
                || l.contains("FILE SYSTEM WAS MODIFIED")
                || l.contains(" files (")
                || l.starts_with("e2fsck ")
                || l.contains(": clean,")
                || l.starts_with("Setting free")
                || l.starts_with("Backing up journal"))
        })
        .map(str::to_owned)
        .collect()
}

/// The figures of a run.
#[derive(Default)]
struct Tally {
    trials: u32,
    replays: u32,
    fsck_status: BTreeMap<i32, u32>,
    files_checked: u64,
    files_done: u64,
    killed_before_ready: u32,
    full: u32,
    failures: Vec<String>,
}

fn run_trials(trials: u32) -> Tally {
    let seed = std::env::var("LKL_DURABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("durability: {trials} trials, seed {seed} (LKL_DURABILITY_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let t = Scratch::new("run");
    let image = t.path("fs.img");
    make_image(&image, "ext4", 128);
    let mount = "/data";
    let config = t.path("cfg.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"disks":[{{"image":"{}","fstype":"ext4","mount":"{mount}"}}]}}"#,
            image.display()
        ),
    )
    .unwrap();
    let launcher = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bin/lkl-hijack.sh");
    // Every file whose DONE line was printed, by trial: name -> digest.
    let mut expected: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    let mut tally = Tally::default();
    for trial in 0..trials {
        // The program removes trials older than the previous one.
        let keep = trial.saturating_sub(1);
        expected.retain(|&k, _| k >= keep);
        // Killed anywhere from during boot to a few seconds of writing.
        let delay = Duration::from_millis(match rng.below(4) {
            0 => rng.below(200),
            _ => 300 + rng.below(2500),
        });
        let mut child = Command::new(&launcher)
            .args([PYTHON, "-c", WRITER, mount])
            .arg(trial.to_string())
            .arg(keep.to_string())
            .env("LKL_HIJACK_LIB", library())
            .env("LKL_HIJACK_CONFIG_FILE", &config)
            .current_dir(&t.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the hijacked writer");
        let stdout = child.stdout.take().unwrap();
        let full = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let full2 = full.clone();
        let reader = std::thread::spawn(move || {
            // Only whole lines count: a line cut by the kill has no '\n'.
            let mut lines = Vec::new();
            let mut r = BufReader::new(stdout);
            loop {
                let mut l = String::new();
                match r.read_line(&mut l) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if l.ends_with('\n') => {
                        if l == "FULL\n" {
                            full2.store(true, std::sync::atomic::Ordering::Release);
                        }
                        lines.push(l.trim_end().to_owned())
                    }
                    Ok(_) => break,
                }
            }
            lines
        });
        let start = Instant::now();
        let mut exited_early = None;
        while start.elapsed() < delay && !full.load(std::sync::atomic::Ordering::Acquire) {
            if let Some(st) = child.try_wait().unwrap() {
                exited_early = Some(st);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if full.load(std::sync::atomic::Ordering::Acquire) {
            tally.full += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let lines = reader.join().unwrap();
        let mut stderr = String::new();
        use std::io::Read;
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        if let Some(st) = exited_early {
            tally.failures.push(format!(
                "trial {trial}: the writer exited by itself ({st}): {stderr}"
            ));
            break;
        }
        if !lines.iter().any(|l| l == "READY") {
            tally.killed_before_ready += 1;
        }
        let done = expected.entry(trial).or_default();
        for l in &lines {
            if let Some(rest) = l.strip_prefix("DONE ") {
                let (name, digest) = rest.split_once(' ').expect("DONE name digest");
                done.insert(name.to_owned(), digest.to_owned());
                tally.files_done += 1;
            }
        }
        let done_now = done.len();

        // The check, on a copy: the original goes on to the next trial.
        let copy = t.path("copy.img");
        std::fs::copy(&image, &copy).unwrap();
        let (code, log) = e2fsck(&["-fy"], &copy);
        *tally.fsck_status.entry(code).or_default() += 1;
        if log.contains("recovering journal") {
            tally.replays += 1;
        }
        let extra = repairs(&log);
        if code > 1 || !extra.is_empty() {
            tally.failures.push(format!(
                "trial {trial} (killed after {delay:?}): e2fsck -fy status {code}, repairs {extra:?}\n{log}"
            ));
        }
        let (code2, log2) = e2fsck(&["-fn"], &copy);
        if code2 != 0 {
            tally.failures.push(format!(
                "trial {trial}: e2fsck -fn after -fy: status {code2}\n{log2}"
            ));
        }
        let out_dir = t.path("out");
        let _ = std::fs::remove_dir_all(&out_dir);
        let o = Command::new(testkit::workspace_bin("cpfromfs"))
            .args(["-t", "ext4", "-i"])
            .arg(&copy)
            .arg("/")
            .arg(&out_dir)
            .output()
            .unwrap();
        if !o.status.success() {
            tally.failures.push(format!(
                "trial {trial}: cpfromfs: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        for (name, digest) in expected.values().flatten() {
            tally.files_checked += 1;
            match std::fs::read(out_dir.join(name)) {
                Ok(d) if &sha256_hex(&d) == digest => {}
                Ok(d) => tally.failures.push(format!(
                    "trial {trial}: {name}: {} bytes, digest differs after kill at {delay:?}",
                    d.len()
                )),
                Err(e) => tally.failures.push(format!(
                    "trial {trial}: {name} (fsync had returned) is missing: {e}"
                )),
            }
        }
        println!(
            "trial {trial:3}: killed after {:5} ms, {:3} files done, e2fsck -fy {code}{}",
            delay.as_millis(),
            done_now,
            if log.contains("recovering journal") {
                " (journal replayed)"
            } else {
                ""
            }
        );
        tally.trials += 1;
        if !tally.failures.is_empty() {
            break;
        }
    }
    tally
}

fn report(tally: &Tally) {
    println!(
        "durability: {} trials, {} files fsync'd and reported, {} file checks, all intact: {}; \
         e2fsck -fy status {:?}, journal replayed in {}; killed before the disk was ready in {}, \
         after the trial's 40 MiB in {}",
        tally.trials,
        tally.files_done,
        tally.files_checked,
        tally.failures.is_empty(),
        tally.fsck_status,
        tally.replays,
        tally.killed_before_ready,
        tally.full
    );
    assert!(tally.failures.is_empty(), "{}", tally.failures.join("\n"));
}

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn sigkill_during_fsync_writes_loses_nothing_fsynced() {
    let n = std::env::var("LKL_DURABILITY_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let tally = run_trials(n);
    report(&tally);
}

/// The long run (100 trials): `cargo test --release --test durability -- --ignored`.
#[testkit::needs(python3, mkfs_ext4)]
#[test]
#[ignore]
fn sigkill_durability_long() {
    let n = std::env::var("LKL_DURABILITY_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let tally = run_trials(n);
    report(&tally);
}
