//! The command line of cptofs and cpfromfs.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{Direction, Fail};

pub(super) struct Options {
    pub(super) fstype: String,
    pub(super) image: PathBuf,
    /// `None` is the whole disk (`-P 0`, or no `-P`).
    pub(super) partition: Option<u32>,
    pub(super) printk: bool,
    /// Owner (`-o UID`) and group (`-g GID`) given to every copied file.
    pub(super) owner: Option<u32>,
    pub(super) group: Option<u32>,
    /// Kernel memory, MiB (`-m`).
    pub(super) mem_mb: Option<u64>,
    pub(super) selinux: Option<String>,
    pub(super) verbose: bool,
    pub(super) mount_opts: String,
    pub(super) sources: Vec<OsString>,
    pub(super) dest: OsString,
}

pub(super) fn usage(d: Direction) -> String {
    let (src, dst) = match d {
        Direction::ToFs => ("host paths", "a path in the image"),
        Direction::FromFs => ("paths in the image", "a host path"),
    };
    format!(
        "Usage: {prog} -t FSTYPE -i IMAGE [-P PART] [-o UID] [-g GID] [-m MB] [-p] [-s CTX]\n\
         \x20             [--mount-options OPTS] [-v] SRC... DST\n\
         Copies SRC ({src}) to DST ({dst}) like `cp -a`: directories recursively,\n\
         symlinks, device nodes and FIFOs, with owner, mode and timestamps.\n\
         The last path component of a SRC may be a glob (*, ?, [...]).\n\
         \n\
         LKL's flags (same letters, same meaning as LKL's {prog}):\n\
         \x20 -t, --filesystem-type FSTYPE   file system of the image (ext4, vfat, xfs, btrfs, ...)\n\
         \x20 -i, --filesystem-image IMAGE   the image file (also --image)\n\
         \x20 -P, --partition PART           use partition PART (MBR or GPT); 0 = the whole image\n\
         \x20 -o, --owner UID                owner of every copied file (default: the source's)\n\
         \x20 -g, --group GID                group of every copied file (default: the source's)\n\
         \x20 -m, --mb MB                    kernel memory in MiB (default {mem})\n\
         \x20 -p, --enable-printk            show the kernel's messages on stderr\n\
         \x20 -s, --selinux CTX              label every copied file with SELinux context CTX (cptofs)\n\
         \n\
         Ours:\n\
         \x20     --mount-options OPTS       extra mount options (also --options; this was -o\n\
         \x20                                before -o took LKL's meaning, the owner)\n\
         \x20 -v, --verbose                  show progress even when stderr is not a terminal\n\
         \x20 -h, --help                     this help\n",
        prog = d.prog(),
        mem = super::KERNEL_MEM >> 20
    )
}

/// Bounds of `-m` (MiB): below, the kernel cannot mount a file system;
/// above, it is surely a typo.
const MIN_MB: u64 = 16;
const MAX_MB: u64 = 1 << 20;

/// A numeric user or group id (LKL takes numbers only, so do we).
fn id(flag: &str, v: &str, what: &str) -> Result<u32, Fail> {
    v.parse::<u32>()
        .ok()
        .filter(|n| *n != u32::MAX)
        .ok_or_else(|| {
            // Before -o took LKL's meaning it was the mount options.
            let hint = if flag == "-o" {
                " (mount options are --mount-options)"
            } else {
                ""
            };
            Fail(format!("{flag} needs a numeric {what}, got {v:?}{hint}"))
        })
}

pub(super) fn parse_args(d: Direction, args: Vec<OsString>) -> Result<Option<Options>, Fail> {
    let mut fstype = None;
    let mut image = None;
    let mut partition = None;
    let mut printk = false;
    let mut owner = None;
    let mut group = None;
    let mut mem_mb = None;
    let mut selinux = None;
    let mut verbose = false;
    let mut mount_opts = String::new();
    let mut paths = Vec::new();
    let mut it = args.into_iter();
    let mut only_paths = false;
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        if only_paths || !s.starts_with('-') || s == "-" {
            paths.push(a);
            continue;
        }
        let mut value = |name: &str| -> Result<String, Fail> {
            it.next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| Fail(format!("option {name} needs a value")))
        };
        match s.as_str() {
            "--" => only_paths = true,
            "-h" | "--help" => return Ok(None),
            "-t" | "--filesystem-type" => fstype = Some(value(&s)?),
            "-i" | "--image" | "--filesystem-image" => image = Some(PathBuf::from(value(&s)?)),
            "-P" | "--partition" => {
                let v = value(&s)?;
                let n: u32 = v.parse().map_err(|_| {
                    Fail(format!("bad partition number {v:?} (0 = the whole image)"))
                })?;
                // LKL's 0: the whole disk, no partition table.
                partition = (n > 0).then_some(n);
            }
            "-p" | "--enable-printk" => printk = true,
            "-s" | "--selinux" => selinux = Some(value(&s)?),
            "-o" | "--owner" => owner = Some(id(&s, &value(&s)?, "UID")?),
            "-g" | "--group" => group = Some(id(&s, &value(&s)?, "GID")?),
            "-m" | "--mb" => {
                let v = value(&s)?;
                let mb: u64 = v
                    .parse()
                    .ok()
                    .filter(|n| (MIN_MB..=MAX_MB).contains(n))
                    .ok_or_else(|| {
                        Fail(format!(
                            "{s} needs the kernel memory in MiB, {MIN_MB} to {MAX_MB}, got {v:?}"
                        ))
                    })?;
                mem_mb = Some(mb);
            }
            "--mount-options" | "--options" => mount_opts = value(&s)?,
            "-v" | "--verbose" => verbose = true,
            _ => return Err(Fail(format!("unknown option {s} (see --help)"))),
        }
    }
    let fstype = fstype.ok_or_else(|| Fail("missing -t FSTYPE (see --help)".into()))?;
    let image = image.ok_or_else(|| Fail("missing -i IMAGE (see --help)".into()))?;
    if paths.len() < 2 {
        return Err(Fail("need at least one SRC and a DST (see --help)".into()));
    }
    if selinux.is_some() && d == Direction::FromFs {
        return Err(Fail(
            "-s labels files written to an image: cptofs only".into(),
        ));
    }
    let dest = paths.pop().unwrap_or_default();
    Ok(Some(Options {
        fstype,
        image,
        partition,
        printk,
        owner,
        group,
        mem_mb,
        selinux,
        verbose,
        mount_opts,
        sources: paths,
        dest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let o = parse_args(
            Direction::ToFs,
            a(&["-t", "ext4", "-i", "x.img", "-P", "2", "a", "b", "/"]),
        )
        .ok()
        .flatten()
        .unwrap();
        assert_eq!(o.partition, Some(2));
        assert_eq!(o.sources.len(), 2);
        assert!(parse_args(Direction::ToFs, a(&["--help"]))
            .ok()
            .unwrap()
            .is_none());
        assert!(parse_args(Direction::ToFs, a(&["-t", "ext4", "x", "y"])).is_err());
        assert!(parse_args(
            Direction::ToFs,
            a(&["-t", "ext4", "-i", "i", "-P", "x", "a", "b"])
        )
        .is_err());
        // LKL's flags: owner, group, memory, whole disk; ours in long form.
        let o = parse_args(
            Direction::ToFs,
            a(&[
                "-o",
                "0",
                "-g",
                "7",
                "-m",
                "64",
                "-p",
                "-P",
                "0",
                "-t",
                "ext4",
                "-i",
                "x",
                "--mount-options",
                "noatime",
                "a",
                "/",
            ]),
        )
        .ok()
        .flatten()
        .unwrap();
        assert_eq!((o.owner, o.group, o.mem_mb), (Some(0), Some(7), Some(64)));
        assert!(o.printk && o.partition.is_none());
        assert_eq!(o.mount_opts, "noatime");
        let bad = |v: &[&str]| {
            let mut v = v.to_vec();
            v.extend(["-t", "ext4", "-i", "x", "a", "/"]);
            parse_args(Direction::FromFs, a(&v)).is_err()
        };
        assert!(bad(&["-o", "noatime"]));
        assert!(bad(&["-g", "wheel"]));
        assert!(bad(&["-m", "0"]));
        assert!(bad(&["-s", "ctx"]));
    }
}
