//! Bad tool arguments (cptofs, cpfromfs, fs2tar, lklfuse): each gets one
//! line naming what is wrong and a non-zero status, never a crash or hang.

use std::process::Command;
use std::time::Duration;

use testkit::images::{make_image, Scratch};
use testkit::{no_crash, run_limited};

const LIMIT: Duration = Duration::from_secs(20);

#[testkit::needs(mkfs_ext4)]
#[test]
fn tools_reject_bad_arguments() {
    let t = Scratch::new("tools");
    let good = t.path("good.img");
    make_image(&good, "ext4", 16);
    let g = good.to_str().unwrap();
    let missing = t.path("none.img");
    let m = missing.to_str().unwrap();
    let out_dir = t.path("out");
    let o = out_dir.to_str().unwrap();
    let mnt = t.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mp = mnt.to_str().unwrap();
    let tar = t.path("o.tar");
    let tr = tar.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "cptofs",
            vec!["-t", "ext4", "-i", m, "/etc/hostname", "/"],
            "cannot open image",
        ),
        (
            "cptofs",
            vec!["-t", "nosuchfs", "-i", g, "/etc/hostname", "/"],
            "unknown file-system type",
        ),
        (
            "cptofs",
            vec!["-t", "xfs", "-i", g, "/etc/hostname", "/"],
            "not a xfs file system",
        ),
        (
            "cptofs",
            vec!["-t", "ext4", "/etc/hostname", "/"],
            "missing -i",
        ),
        (
            "cpfromfs",
            vec!["-t", "ext4", "-i", g, "-P", "x", "/", o],
            "bad partition number",
        ),
        (
            "cpfromfs",
            vec![
                "-t",
                "ext4",
                "-i",
                g,
                "--mount-options",
                "bogusopt=1",
                "/",
                o,
            ],
            "refused the mount options",
        ),
        // LKL's -o is the owner: a number, not mount options.
        (
            "cptofs",
            vec!["-t", "ext4", "-i", g, "-o", "noatime", "/etc/hostname", "/"],
            "-o needs a numeric UID",
        ),
        (
            "cpfromfs",
            vec!["-t", "ext4", "-i", g, "-g", "-5", "/", o],
            "-g needs a numeric GID",
        ),
        (
            "cptofs",
            vec!["-t", "ext4", "-i", g, "-m", "1", "/etc/hostname", "/"],
            "kernel memory in MiB",
        ),
        (
            "cptofs",
            vec!["-t", "ext4", "-i", g, "-o"],
            "option -o needs a value",
        ),
        // SELinux labels are for files written into an image.
        (
            "cpfromfs",
            vec![
                "-t",
                "ext4",
                "-i",
                g,
                "-s",
                "system_u:object_r:etc_t:s0",
                "/",
                o,
            ],
            "cptofs only",
        ),
        (
            "cpfromfs",
            vec!["-t", "ext4", "-i", g, "-P", "3", "/", o],
            "no partition 3",
        ),
        (
            "cpfromfs",
            vec!["-t", "ext4", "-i", g, "/nosuchpath", o],
            "No such file",
        ),
        ("fs2tar", vec!["-t", "ext4", m, tr], "no such file"),
        (
            "fs2tar",
            vec!["-t", "vfat", g, tr],
            "not a vfat file system",
        ),
        (
            "fs2tar",
            vec!["-t", "ext4", "-P", "99999999999", g, tr],
            "partition number",
        ),
        ("fs2tar", vec!["--bogus"], "unknown flag"),
        (
            "fs2tar",
            vec!["-t", "ext4", "-s", "/nonexistent-dir/ctx", g, tr],
            "cannot create the SELinux contexts file",
        ),
        (
            "fs2tar",
            vec!["-t", "ext4", "-P", "-1", g, tr],
            "partition number",
        ),
        (
            "lklfuse",
            vec![g, mp, "-o", "type=nosuchfs"],
            "unknown file-system type",
        ),
        (
            "lklfuse",
            vec![g, mp, "-o", "type=ext4,part=x"],
            "part needs a number",
        ),
        (
            "lklfuse",
            vec![g, "/nonexistent/mnt", "-o", "type=ext4"],
            "mount point",
        ),
        (
            "lklfuse",
            vec![g, mp, "-o", "type=ext4,log=/nonexistent-dir/k.log", "-f"],
            "log file /nonexistent-dir/k.log",
        ),
        (
            "lklfuse",
            vec![g, mp, "-o", "type=ext4,log="],
            "log needs a file",
        ),
        ("lklfuse", vec![g, mp, "-d", "-o", "type=ext4"], "-d"),
    ];
    let n = cases.len();
    for (tool, args, want) in cases {
        let exe = match tool {
            "cptofs" => env!("CARGO_BIN_EXE_cptofs"),
            "cpfromfs" => env!("CARGO_BIN_EXE_cpfromfs"),
            "fs2tar" => env!("CARGO_BIN_EXE_fs2tar"),
            _ => env!("CARGO_BIN_EXE_lklfuse"),
        };
        let mut cmd = Command::new(exe);
        cmd.args(&args);
        let what = format!("{tool} {}", args.join(" "));
        let out = run_limited(cmd, LIMIT).unwrap_or_else(|| panic!("{what}: hang"));
        no_crash(&what, &out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: succeeded");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("(try ")).collect();
        assert!(
            stderr.contains(want) && lines.len() == 1 && lines[0].starts_with(&format!("{tool}: ")),
            "{what}: want one line with {want:?}, got:\n{stderr}"
        );
        println!("{what:<70} -> {} ({})", lines[0], out.status);
    }
    println!("{n} bad tool invocations, each with its one-line error");
}
