//! The command line of cptofs and cpfromfs.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{Direction, Fail};

pub(super) struct Options {
    pub(super) fstype: String,
    pub(super) image: PathBuf,
    pub(super) partition: Option<u32>,
    pub(super) printk: bool,
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
        "Usage: {prog} -t FSTYPE -i IMAGE [-P PART] [-p] [-s SELINUX_CTX] [-o OPTS] [-v] SRC... DST\n\
         Copies SRC ({src}) to DST ({dst}) like `cp -a`: directories recursively,\n\
         symlinks, device nodes and FIFOs, with owner, mode and timestamps.\n\
         The last path component of a SRC may be a glob (*, ?, [...]).\n\
         \n\
         \x20 -t, --filesystem-type FSTYPE  file system of the image (ext4, vfat, xfs, btrfs, ...)\n\
         \x20 -i, --image IMAGE             the image file\n\
         \x20 -P, --partition PART          use partition PART (MBR or GPT) instead of the whole image\n\
         \x20 -p, --enable-printk           show the kernel's messages on stderr\n\
         \x20 -s, --selinux CTX             label every copied file with SELinux context CTX (cptofs)\n\
         \x20 -o, --options OPTS            extra mount options\n\
         \x20 -v, --verbose                 show progress even when stderr is not a terminal\n\
         \x20 -h, --help                    this help\n",
        prog = d.prog()
    )
}

pub(super) fn parse_args(d: Direction, args: Vec<OsString>) -> Result<Option<Options>, Fail> {
    let mut fstype = None;
    let mut image = None;
    let mut partition = None;
    let mut printk = false;
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
            "-i" | "--image" => image = Some(PathBuf::from(value(&s)?)),
            "-P" | "--partition" => {
                let v = value(&s)?;
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Fail(format!("bad partition number {v:?}")))?;
                partition = Some(n);
            }
            "-p" | "--enable-printk" => printk = true,
            "-s" | "--selinux" => selinux = Some(value(&s)?),
            "-o" | "--options" => mount_opts = value(&s)?,
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
    }
}
