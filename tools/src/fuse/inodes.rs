//! Inodes: the `O_PATH` descriptor each inode the host knows holds, the
//! table of them, inode numbering (the kernel's own numbers, the root's
//! swapped with 1, a private range for other devices) and attributes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use lkl::syscall::{self as sys, abi, abi::Stat, Errno};

use super::{lock, KernelFs};

/// First inode number of files on other devices.
pub(super) const FOREIGN_BASE: u64 = 1 << 63;

/// A kernel descriptor, closed when the last holder lets go.
#[derive(Debug)]
pub(super) struct KernelFd(pub(super) i32);

impl Drop for KernelFd {
    fn drop(&mut self) {
        let _ = sys::close(self.0);
    }
}

pub(super) struct Node {
    pub(super) fd: Arc<KernelFd>,
    /// Lookups the host holds on this inode.
    pub(super) nlookup: u64,
    /// (st_dev, st_ino) for foreign-device nodes, to free their number.
    pub(super) foreign_key: Option<(u64, u64)>,
}

pub(super) struct Table {
    pub(super) nodes: HashMap<u64, Node>,
    pub(super) foreign: HashMap<(u64, u64), u64>,
    pub(super) next_foreign: u64,
}

fn to_time(sec: i64, nsec: u64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec)
    }
}

/// The FUSE type of a `st_mode`.
pub fn file_type(mode: u32) -> FileType {
    match mode & abi::S_IFMT {
        abi::S_IFDIR => FileType::Directory,
        abi::S_IFLNK => FileType::Symlink,
        abi::S_IFCHR => FileType::CharDevice,
        abi::S_IFBLK => FileType::BlockDevice,
        abi::S_IFIFO => FileType::NamedPipe,
        abi::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

pub(super) fn dtype_file_type(dt: u8) -> FileType {
    match dt {
        1 => FileType::NamedPipe,
        2 => FileType::CharDevice,
        4 => FileType::Directory,
        6 => FileType::BlockDevice,
        10 => FileType::Symlink,
        12 => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

pub(super) fn stat_fd(fd: i32) -> Result<Stat, Errno> {
    sys::fstatat(fd, "", abi::AT_EMPTY_PATH | abi::AT_SYMLINK_NOFOLLOW)
}

pub(super) fn is_dot(name: &OsStr) -> bool {
    name == "." || name == ".."
}

impl KernelFs {
    /// The FUSE inode number of a kernel inode on the root's device.
    pub(super) fn local_ino(&self, kino: u64) -> u64 {
        if kino == self.root_ino {
            1
        } else if kino == 1 {
            self.root_ino
        } else {
            kino
        }
    }

    pub(super) fn attr(&self, ino: u64, st: &Stat) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            atime: to_time(st.st_atime, st.st_atime_nsec),
            mtime: to_time(st.st_mtime, st.st_mtime_nsec),
            ctime: to_time(st.st_ctime, st.st_ctime_nsec),
            crtime: UNIX_EPOCH,
            kind: file_type(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    /// The `O_PATH` descriptor of inode `ino`.
    pub(super) fn node(&self, ino: INodeNo) -> Result<Arc<KernelFd>, Errno> {
        lock(&self.table)
            .nodes
            .get(&ino.0)
            .map(|n| n.fd.clone())
            .ok_or(Errno(116)) // ESTALE
    }

    /// Looks `name` up in `parent` and takes one lookup reference on it.
    pub(super) fn lookup_child(
        &self,
        parent: &KernelFd,
        name: &OsStr,
    ) -> Result<(u64, Stat), Errno> {
        let fd = sys::openat(
            parent.0,
            name,
            abi::O_PATH | abi::O_NOFOLLOW | abi::O_CLOEXEC,
            0,
        )?;
        let fd = KernelFd(fd);
        let st = stat_fd(fd.0)?;
        let mut t = lock(&self.table);
        let ino = if st.st_dev == self.root_dev {
            self.local_ino(st.st_ino)
        } else {
            let key = (st.st_dev, st.st_ino);
            match t.foreign.get(&key) {
                Some(&ino) => ino,
                None => {
                    let ino = t.next_foreign;
                    t.next_foreign += 1;
                    t.foreign.insert(key, ino);
                    ino
                }
            }
        };
        match t.nodes.get_mut(&ino) {
            Some(node) => node.nlookup += 1, // `fd` closes: the node has one
            None => {
                let foreign_key = (st.st_dev != self.root_dev).then_some((st.st_dev, st.st_ino));
                t.nodes.insert(
                    ino,
                    Node {
                        fd: Arc::new(fd),
                        nlookup: 1,
                        foreign_key,
                    },
                );
            }
        }
        Ok((ino, st))
    }

    pub(super) fn entry(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let p = self.node(parent)?;
        let (ino, st) = self.lookup_child(&p, name)?;
        Ok(self.attr(ino, &st))
    }

    pub(super) fn forget_one(&self, ino: u64, n: u64) {
        let mut t = lock(&self.table);
        let gone = match t.nodes.get_mut(&ino) {
            Some(node) if ino != 1 => {
                node.nlookup = node.nlookup.saturating_sub(n);
                node.nlookup == 0
            }
            _ => false,
        };
        if gone {
            if let Some(node) = t.nodes.remove(&ino) {
                if let Some(key) = node.foreign_key {
                    t.foreign.remove(&key);
                }
            }
        }
    }

    pub(super) fn getattr_ino(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        let fd = self.node(ino)?;
        let st = stat_fd(fd.0)?;
        Ok(self.attr(ino.0, &st))
    }
}
