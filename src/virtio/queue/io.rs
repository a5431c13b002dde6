//! A chain's buffers as one byte stream each way: [`Reader`] over the
//! device-readable segments, [`Writer`] over the device-writable ones, both
//! bounds-checked by [`GuestMemory`].

use std::io;

use super::Segment;
use crate::virtio::mem::{GuestAddress, GuestMemory, MemError};

/// A position in a list of segments.
struct Cursor<'a> {
    mem: &'a GuestMemory,
    segs: &'a [Segment],
    seg: usize,
    off: u32,
    remaining: usize,
}

impl<'a> Cursor<'a> {
    fn new(mem: &'a GuestMemory, segs: &'a [Segment], total: u32) -> Self {
        Cursor {
            mem,
            segs,
            seg: 0,
            off: 0,
            remaining: total as usize,
        }
    }

    /// Moves up to `len` bytes, calling `f(addr, pos, n)` for each
    /// contiguous piece. Returns how many bytes were moved.
    fn advance(
        &mut self,
        len: usize,
        mut f: impl FnMut(GuestAddress, usize, usize) -> Result<(), MemError>,
    ) -> io::Result<usize> {
        let mut done = 0;
        while done < len {
            let Some(s) = self.segs.get(self.seg) else {
                break;
            };
            let left = (s.len - self.off) as usize; // off <= len, kept below
            if left == 0 {
                self.seg += 1;
                self.off = 0;
                continue;
            }
            let n = left.min(len - done);
            // Cannot overflow: the whole segment was checked to be inside
            // guest memory when the chain was parsed.
            let addr = s
                .addr
                .checked_add(u64::from(self.off))
                .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
            f(addr, done, n).map_err(io::Error::other)?;
            done += n;
            self.off += n as u32; // n <= left, so off stays <= s.len
            self.remaining -= n;
        }
        Ok(done)
    }
}

/// Reads a chain's device-readable bytes as one stream.
pub struct Reader<'a> {
    cursor: Cursor<'a>,
}

impl<'a> Reader<'a> {
    /// A reader over `segs`, `total` bytes in all.
    #[inline]
    pub(super) fn new(mem: &'a GuestMemory, segs: &'a [Segment], total: u32) -> Self {
        Reader {
            cursor: Cursor::new(mem, segs, total),
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.cursor.remaining
    }
}

impl io::Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mem = self.cursor.mem;
        self.cursor.advance(buf.len(), |addr, pos, n| {
            mem.read(addr, &mut buf[pos..pos + n])
        })
    }
}

/// Writes a chain's device-writable bytes as one stream.
pub struct Writer<'a> {
    cursor: Cursor<'a>,
    written: usize,
}

impl<'a> Writer<'a> {
    /// A writer over `segs`, `total` bytes in all.
    #[inline]
    pub(super) fn new(mem: &'a GuestMemory, segs: &'a [Segment], total: u32) -> Self {
        Writer {
            cursor: Cursor::new(mem, segs, total),
            written: 0,
        }
    }

    /// Room left.
    pub fn available(&self) -> usize {
        self.cursor.remaining
    }

    /// Bytes written so far (the used-ring length to report).
    pub fn written(&self) -> usize {
        self.written
    }
}

impl io::Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mem = self.cursor.mem;
        let n = self.cursor.advance(buf.len(), |addr, pos, n| {
            mem.write(addr, &buf[pos..pos + n])
        })?;
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
