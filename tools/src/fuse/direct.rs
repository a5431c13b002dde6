//! Direct I/O: large aligned reads and writes through an `O_DIRECT` twin
//! of the open file and a per-thread buffer in the kernel's memory.

use fuser::{ReplyData, ReplyWrite};
use lkl::syscall::{self as sys, abi, Errno};

use super::{ferr, lock, proc_path, KernelFs};

/// Reads and writes at least this large go around the kernel's page cache.
pub(super) const DIRECT_MIN: u32 = 64 << 10;
/// Size of each request thread's direct-I/O buffer (the largest READ or
/// WRITE the host sends is max_pages, 1 MiB).
const DIRECT_BUF: usize = 1 << 20;

/// A buffer in the kernel's memory, mapped by the kernel's `mmap` for one
/// request thread: `O_DIRECT` reads land there straight from the disk, and
/// `O_DIRECT` writes go to the disk straight from there.
struct KernelBuf {
    addr: usize,
}

impl KernelBuf {
    pub(super) fn map() -> Result<KernelBuf, Errno> {
        const PROT_RW: i64 = 3; // PROT_READ | PROT_WRITE
        const MAP_PRIVATE_ANON: i64 = 0x22;
        // SAFETY: an anonymous mapping; no pointer argument.
        let addr = unsafe {
            sys::raw(
                sys::nr::MMAP,
                [0, DIRECT_BUF as i64, PROT_RW, MAP_PRIVATE_ANON, -1, 0],
            )
        }?;
        Ok(KernelBuf {
            addr: addr as usize,
        })
    }
}

impl Drop for KernelBuf {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; no slice of it outlives
        // the thread that owns it.
        let _ = unsafe {
            sys::raw(
                sys::nr::MUNMAP,
                [self.addr as i64, DIRECT_BUF as i64, 0, 0, 0, 0],
            )
        };
    }
}

thread_local! {
    /// This request thread's direct-I/O buffer: None until first used,
    /// Some(None) if the kernel would not map one.
    static DIRECT_IO_BUF: std::cell::RefCell<Option<Option<KernelBuf>>> =
        const { std::cell::RefCell::new(None) };
}

/// The address of this request thread's direct-I/O buffer (`DIRECT_BUF`
/// bytes), mapped on first use; None if the kernel would not map one.
fn thread_buf() -> Option<usize> {
    DIRECT_IO_BUF.with_borrow_mut(|b| {
        b.get_or_insert_with(|| KernelBuf::map().ok())
            .as_ref()
            .map(|k| k.addr)
    })
}

/// The `O_DIRECT` twin of an open file.
#[derive(Clone, Copy)]
pub(super) enum Twin {
    /// Opened: direct reads go there.
    Direct(i32),
    /// Opened, but a direct read failed: it stays open (another thread may
    /// still be reading through it) and unused until the file is released.
    Refused(i32),
    /// The file system would not open one.
    None,
}

impl Twin {
    pub(super) fn close(self) {
        if let Twin::Direct(fd) | Twin::Refused(fd) = self {
            let _ = sys::close(fd);
        }
    }
}

impl KernelFs {
    /// The `O_DIRECT` twin of open file `fd`, opened on first use; None if
    /// the file system will not do direct I/O on it.
    fn direct_twin(&self, fd: i32) -> Option<i32> {
        let mut m = lock(&self.direct);
        if let Some(t) = m.get(&fd) {
            return match *t {
                Twin::Direct(t) => Some(t),
                _ => None,
            };
        }
        if !lock(&self.files).contains(&fd) {
            return None;
        }
        let open = |mode| {
            sys::open(
                &proc_path(fd),
                mode | abi::O_DIRECT | abi::O_CLOEXEC | abi::O_LARGEFILE,
                0,
            )
        };
        // Read-write where the file system allows it (direct writes need
        // it; a read-only mount refuses), else read-only.
        let rw = !self.opts.read_only && self.opts.writeback_cache;
        let first = if rw {
            open(abi::O_RDWR)
        } else {
            Err(Errno::EROFS)
        };
        let twin = match first {
            Ok(t) => Twin::Direct(t),
            Err(_) => match open(abi::O_RDONLY) {
                Ok(t) => Twin::Direct(t),
                Err(_) => Twin::None,
            },
        };
        m.insert(fd, twin);
        match twin {
            Twin::Direct(t) => Some(t),
            _ => None,
        }
    }

    /// Serves a READ of `size` bytes at `offset` of open file `fd` with
    /// `O_DIRECT` into this thread's kernel buffer: the disk's data goes
    /// straight there (our virtio-blk device reads the image into it), with
    /// no copy into the kernel's page cache and none of its page allocation
    /// and reclaim (the host's page cache already holds the image). Direct
    /// reads see every write made through the file's buffered descriptor
    /// (the kernel writes the range back first). Gives `reply` back if a
    /// direct read is not possible here: read buffered instead.
    pub(super) fn read_direct(
        &self,
        fd: i32,
        offset: u64,
        size: u32,
        reply: ReplyData,
    ) -> Option<ReplyData> {
        let want = size as usize;
        if want > DIRECT_BUF {
            return Some(reply);
        }
        let Some(twin) = self.direct_twin(fd) else {
            return Some(reply);
        };
        let Some(addr) = thread_buf() else {
            return Some(reply);
        };
        // SAFETY: `addr..addr + DIRECT_BUF` is this thread's own kernel
        // mapping (alive until the thread exits) and `want <= DIRECT_BUF`.
        // Nothing else writes it: the kernel fills it only inside our pread
        // below, which returns after the disk's data has landed. The slice
        // ends with this call.
        let buf = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, want) };
        let mut done = 0;
        while done < want {
            match sys::pread(twin, &mut buf[done..], offset as i64 + done as i64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::EINTR) => continue,
                // Not for this file after all (e.g. EINVAL): buffered.
                Err(_) if done == 0 => {
                    if let Some(t) = lock(&self.direct).get_mut(&fd) {
                        *t = Twin::Refused(twin);
                    }
                    return Some(reply);
                }
                Err(_) => break,
            }
        }
        reply.data(&buf[..done]);
        None
    }

    /// Serves a WRITE through the `O_DIRECT` twin: the data is copied once
    /// into this thread's kernel buffer and our virtio-blk device writes it
    /// to the image from there, instead of a copy into the kernel's page
    /// cache that its writeback (throttled, one CPU) writes later. Only
    /// with the host's writeback cache (which places every write and
    /// strips O_APPEND) and whole, aligned 4 KiB blocks; the kernel keeps
    /// direct and buffered I/O on the file coherent. Gives `reply` back if
    /// a direct write is not possible here.
    pub(super) fn write_direct(
        &self,
        fd: i32,
        offset: u64,
        data: &[u8],
        reply: ReplyWrite,
    ) -> Option<ReplyWrite> {
        if !self.opts.writeback_cache
            || data.len() < DIRECT_MIN as usize
            || data.len() > DIRECT_BUF
            || !offset.is_multiple_of(4096)
            || !data.len().is_multiple_of(4096)
        {
            return Some(reply);
        }
        let Some(twin) = self.direct_twin(fd) else {
            return Some(reply);
        };
        let Some(addr) = thread_buf() else {
            return Some(reply);
        };
        // SAFETY: as in `read_direct`: this thread's own kernel mapping,
        // `data.len() <= DIRECT_BUF`; the kernel only reads it, inside our
        // pwrite below. The slice ends with this call.
        let buf = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, data.len()) };
        buf.copy_from_slice(data);
        let mut done = 0;
        while done < buf.len() {
            match sys::pwrite(twin, &buf[done..], offset as i64 + done as i64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::EINTR) => continue,
                // A read-only twin (EBADF) or no direct I/O here after all
                // (EINVAL): buffered.
                Err(Errno::EBADF | Errno::EINVAL) if done == 0 => return Some(reply),
                Err(e) if done == 0 => {
                    reply.error(ferr(e));
                    return None;
                }
                Err(_) => break,
            }
        }
        reply.written(done as u32);
        None
    }
}
