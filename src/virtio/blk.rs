//! The virtio-blk device (virtio 1.2, 5.2 "Block Device"), device ID 2,
//! backed by an image file.
//!
//! One request queue, served on a worker thread (the kernel's CPU never
//! waits for the disk): reads (`pread`), writes (`pwrite`, refused on a
//! read-only disk), flushes (`fdatasync`), and `GET_ID` (the serial the
//! disk layer uses to find its block device in sysfs). Data moves between
//! the image and guest memory with one `preadv`/`pwritev` over the
//! request's segments ([`GuestMemory::read_file_at`], which bounds-checks
//! every range first): no bounce copy. Each completion is signalled as it
//! happens, not after the whole batch the worker found in the queue.
//!
//! What this layer guarantees, whatever the kernel puts in a chain: a
//! request is completed with `VIRTIO_BLK_S_IOERR` (and counted) if its
//! header is short, its data length is not a multiple of 512, its sector
//! range leaves the image (checked with overflow-checked arithmetic), or it
//! writes to a read-only disk; `VIRTIO_BLK_S_UNSUPP` for types we do not
//! implement; a chain without a status byte is returned with length 0.
//! Chains are bounded by the queue layer (queue-size descriptors, < 4 GiB).

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::device::{read_config_bytes, ActivateContext, ActivateError, Interrupt, VirtioDevice};
use super::device_id;
use super::hostio::{EventFd, Interest, PollSet, Readiness};
use super::mem::{FileIoError, GuestAddress, GuestMemory};
use super::metrics::Counter;
use super::queue::{DescriptorChain, Queue, Segment};
use super::worker::{EventHandler, Worker};

/// Sector size of the protocol (5.2.6: sectors are always 512 bytes).
pub const SECTOR_SIZE: u64 = 512;
/// Size of the one request queue.
pub const BLK_QUEUE_MAX_SIZE: u16 = 256;
/// Largest data segment we announce (`size_max`).
pub const SIZE_MAX: u32 = 1 << 20;
/// Most data segments per request we announce (`seg_max`): the queue size
/// less the header and status descriptors.
pub const SEG_MAX: u32 = BLK_QUEUE_MAX_SIZE as u32 - 2;
/// Length of a `GET_ID` answer (`VIRTIO_BLK_ID_BYTES`).
pub const ID_BYTES: usize = 20;
/// Length of the request header (`type`, `reserved`, `sector`).
const HEADER_LEN: usize = 16;

/// virtio-blk feature bits, as masks (5.2.3).
pub mod features {
    /// `VIRTIO_BLK_F_SIZE_MAX` (1): `size_max` is valid.
    pub const SIZE_MAX: u64 = 1 << 1;
    /// `VIRTIO_BLK_F_SEG_MAX` (2): `seg_max` is valid.
    pub const SEG_MAX: u64 = 1 << 2;
    /// `VIRTIO_BLK_F_RO` (5): the device is read-only.
    pub const RO: u64 = 1 << 5;
    /// `VIRTIO_BLK_F_BLK_SIZE` (6): `blk_size` is valid.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// `VIRTIO_BLK_F_FLUSH` (9): flush requests.
    pub const FLUSH: u64 = 1 << 9;
}

/// Request types (5.2.6).
pub mod req {
    /// `VIRTIO_BLK_T_IN`: read.
    pub const IN: u32 = 0;
    /// `VIRTIO_BLK_T_OUT`: write.
    pub const OUT: u32 = 1;
    /// `VIRTIO_BLK_T_FLUSH`.
    pub const FLUSH: u32 = 4;
    /// `VIRTIO_BLK_T_GET_ID`: the device's serial, 20 bytes.
    pub const GET_ID: u32 = 8;
}

/// Request status values (5.2.6).
pub mod status {
    /// `VIRTIO_BLK_S_OK`.
    pub const OK: u8 = 0;
    /// `VIRTIO_BLK_S_IOERR`.
    pub const IOERR: u8 = 1;
    /// `VIRTIO_BLK_S_UNSUPP`.
    pub const UNSUPP: u8 = 2;
}

/// Configuration space we expose: `capacity` (0), `size_max` (8), `seg_max`
/// (12), `geometry` (16), `blk_size` (20); the rest reads as zero.
const CONFIG_LEN: usize = 24;
const QUEUE_SIZES: [u16; 1] = [BLK_QUEUE_MAX_SIZE];
/// Worker token of the queue-notification eventfd.
const NOTIFY: u32 = 0;

/// Why a block device could not be created.
#[derive(Debug)]
pub enum BlkError {
    /// The image could not be opened.
    Open {
        /// The image path.
        path: String,
        /// What the host said.
        error: io::Error,
    },
    /// The image's size could not be read.
    Size(io::Error),
    /// The image is smaller than one sector.
    TooSmall(u64),
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkError::Open { path, error } => write!(f, "cannot open image {path}: {error}"),
            BlkError::Size(e) => write!(f, "cannot read the image's size: {e}"),
            BlkError::TooSmall(n) => write!(f, "the image is {n} bytes, less than one sector"),
        }
    }
}

impl std::error::Error for BlkError {}

/// Counters of one block device.
#[derive(Debug, Default, Serialize)]
pub struct BlkMetrics {
    /// Read requests completed OK.
    pub read_count: Counter,
    /// Bytes read.
    pub read_bytes: Counter,
    /// Write requests completed OK.
    pub write_count: Counter,
    /// Bytes written.
    pub write_bytes: Counter,
    /// Flushes completed OK.
    pub flush_count: Counter,
    /// Requests the kernel malformed (short header, odd length, sector
    /// range outside the image, missing status byte).
    pub invalid_requests: Counter,
    /// Writes refused because the disk is read-only.
    pub ro_refusals: Counter,
    /// Request types we do not implement.
    pub unsupported: Counter,
    /// Host I/O errors (reported to the kernel as IOERR).
    pub io_errors: Counter,
    /// Unexpected events (notifications while inactive, ring errors).
    pub event_fails: Counter,
    /// Queues the driver broke (the device then asks for a reset).
    pub queue_breaks: Counter,
    /// Worker threads that died.
    pub worker_panics: Counter,
    /// Driver writes to the configuration space (ignored).
    pub config_writes_ignored: Counter,
}

enum State {
    Inactive,
    Active {
        worker: Worker<BlkWorker>,
        notify: Arc<EventFd>,
    },
}

/// A virtio-blk device (device ID 2) over an image file.
pub struct Blk {
    file: Arc<File>,
    read_only: bool,
    capacity: u64,
    serial: [u8; ID_BYTES],
    config: [u8; CONFIG_LEN],
    state: State,
    metrics: Arc<BlkMetrics>,
}

impl fmt::Debug for Blk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blk")
            .field("capacity", &self.capacity)
            .field("read_only", &self.read_only)
            .field("active", &self.is_activated())
            .finish()
    }
}

impl Blk {
    /// Opens the image at `path` (read-only or read-write) as a disk whose
    /// `GET_ID` answer is `serial` (at most 20 bytes are used).
    pub fn open(path: &Path, read_only: bool, serial: &str) -> Result<Self, BlkError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|error| BlkError::Open {
                path: path.display().to_string(),
                error,
            })?;
        Self::from_file(file, read_only, serial)
    }

    /// A disk over an already open file (a regular file or a block device).
    pub fn from_file(mut file: File, read_only: bool, serial: &str) -> Result<Self, BlkError> {
        let len = file.seek(SeekFrom::End(0)).map_err(BlkError::Size)?;
        if len < SECTOR_SIZE {
            return Err(BlkError::TooSmall(len));
        }
        // A partial last sector is left out, as QEMU does.
        let capacity = len / SECTOR_SIZE;
        let mut id = [0u8; ID_BYTES];
        let s = serial.as_bytes();
        let n = s.len().min(ID_BYTES);
        id[..n].copy_from_slice(&s[..n]);
        let mut config = [0u8; CONFIG_LEN];
        config[0..8].copy_from_slice(&capacity.to_le_bytes());
        config[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        config[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        Ok(Blk {
            file: Arc::new(file),
            read_only,
            capacity,
            serial: id,
            config,
            state: State::Inactive,
            metrics: Arc::new(BlkMetrics::default()),
        })
    }

    /// Size in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// True for a read-only disk.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The image file (shared with the worker), e.g. to `fdatasync` it once
    /// the kernel is done with the disk.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// This device's counters.
    pub fn metrics(&self) -> Arc<BlkMetrics> {
        self.metrics.clone()
    }
}

impl VirtioDevice for Blk {
    fn device_type(&self) -> u32 {
        device_id::BLOCK
    }

    fn avail_features(&self) -> u64 {
        let f = features::SIZE_MAX | features::SEG_MAX | features::BLK_SIZE | features::FLUSH;
        if self.read_only {
            f | features::RO
        } else {
            f
        }
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn config_len(&self) -> usize {
        CONFIG_LEN
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Only `writeback` is driver-writable (with CONFIG_WCE, not offered).
        self.metrics.config_writes_ignored.inc();
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        if self.is_activated() {
            return Err(ActivateError::AlreadyActive);
        }
        let got = ctx.queues.len();
        let Some(queue) = ctx.queues.into_iter().next().filter(|_| got == 1) else {
            return Err(ActivateError::QueueCount { expected: 1, got });
        };
        let notify = Arc::new(EventFd::new()?);
        let worker = BlkWorker {
            mem: ctx.mem,
            queue,
            file: self.file.clone(),
            read_only: self.read_only,
            capacity: self.capacity,
            serial: self.serial,
            interrupt: ctx.interrupt,
            notify: notify.clone(),
            metrics: self.metrics.clone(),
            ranges: Vec::new(),
            broken_reported: false,
        };
        match Worker::spawn("virtio-blk", worker) {
            Ok(worker) => {
                self.state = State::Active { worker, notify };
                Ok(())
            }
            Err(e) => Err(ActivateError::Io(e.error)),
        }
    }

    fn reset(&mut self) {
        if let State::Active { worker, .. } = mem::replace(&mut self.state, State::Inactive) {
            if worker.stop().is_err() {
                self.metrics.worker_panics.inc();
            }
        }
    }

    fn is_activated(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    fn queue_notify(&self, index: u32) {
        match (&self.state, index) {
            (State::Active { notify, .. }, 0) => {
                if notify.notify().is_err() {
                    self.metrics.event_fails.inc();
                }
            }
            _ => self.metrics.event_fails.inc(),
        }
    }
}

/// The device's state while active, owned by its worker thread.
struct BlkWorker {
    mem: GuestMemory,
    queue: Queue,
    file: Arc<File>,
    read_only: bool,
    capacity: u64,
    serial: [u8; ID_BYTES],
    interrupt: Arc<Interrupt>,
    notify: Arc<EventFd>,
    metrics: Arc<BlkMetrics>,
    /// The data ranges of the request being served (kept to reuse).
    ranges: Vec<(GuestAddress, u64)>,
    broken_reported: bool,
}

impl EventHandler for BlkWorker {
    fn start(&mut self) {
        // Requests queued before the first notification.
        self.process_queue();
    }

    fn interest(&mut self, set: &mut PollSet) {
        set.add(self.notify.as_raw_fd(), NOTIFY, Interest::READ);
    }

    fn ready(&mut self, token: u32, _readiness: Readiness) {
        if token == NOTIFY {
            let _ = self.notify.drain();
            self.process_queue();
        } else {
            self.metrics.event_fails.inc();
        }
    }
}

/// A request's data: its byte offset in the image and its length.
#[derive(Clone, Copy, Debug)]
struct Extent {
    offset: u64,
    len: u64,
}

impl BlkWorker {
    fn process_queue(&mut self) {
        if self.queue.is_broken() {
            return;
        }
        let _ = self.queue.disable_notification();
        loop {
            while let Some(chain) = self.queue.pop() {
                let used = self.serve(&chain);
                if self.queue.add_used(chain.head(), used).is_err() {
                    self.metrics.event_fails.inc();
                }
                // Each completion is signalled at once (the driver's
                // EVENT_IDX keeps it to one interrupt until it catches up):
                // waiting for the whole batch would stall readers and
                // writeback behind requests queued after theirs.
                self.signal_used();
            }
            match self.queue.enable_notification() {
                Ok(true) => continue,
                _ => break,
            }
        }
        if self.queue.is_broken() && !self.broken_reported {
            self.broken_reported = true;
            self.metrics.queue_breaks.inc();
            self.interrupt.set_needs_reset();
        }
    }

    fn signal_used(&mut self) {
        match self.queue.needs_notification() {
            Ok(true) => self.interrupt.signal_used_queue(),
            Ok(false) => {}
            Err(_) => self.metrics.event_fails.inc(),
        }
    }

    /// Serves one request; returns the used length (bytes written into the
    /// chain, status byte included).
    fn serve(&mut self, chain: &DescriptorChain) -> u32 {
        // 5.2.6.1: the status byte is the last device-writable byte.
        let Some(status_addr) = chain
            .writable()
            .iter()
            .rev()
            .find(|s| s.len > 0)
            .and_then(|s| s.addr.checked_add(u64::from(s.len) - 1))
        else {
            self.metrics.invalid_requests.inc();
            return 0;
        };
        let mut header = [0u8; HEADER_LEN];
        let mut reader = chain.reader(&self.mem);
        let (st, written) = if reader.read_exact(&mut header).is_err() {
            self.metrics.invalid_requests.inc();
            (status::IOERR, 0)
        } else {
            let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let mut s = [0u8; 8];
            s.copy_from_slice(&header[8..16]);
            let sector = u64::from_le_bytes(s);
            self.dispatch(chain, kind, sector)
        };
        if self.mem.write(status_addr, &[st]).is_err() {
            self.metrics.invalid_requests.inc();
        }
        // `written` is at most writable_len - 1 < 2^32.
        (written + 1).min(u64::from(chain.writable_len())) as u32
    }

    /// Returns the status and the data bytes written into the chain.
    fn dispatch(&mut self, chain: &DescriptorChain, kind: u32, sector: u64) -> (u8, u64) {
        // Data room in the writable part, before the status byte.
        let in_room = u64::from(chain.writable_len()) - 1;
        match kind {
            req::IN => match self.extent(sector, in_room) {
                Some(ext) => self.read_in(chain, ext),
                None => (status::IOERR, 0),
            },
            req::OUT => {
                if self.read_only {
                    self.metrics.ro_refusals.inc();
                    return (status::IOERR, 0);
                }
                let out_len = u64::from(chain.readable_len()) - HEADER_LEN as u64;
                match self.extent(sector, out_len) {
                    Some(ext) => (self.write_out(chain, ext), 0),
                    None => (status::IOERR, 0),
                }
            }
            req::FLUSH => {
                if self.read_only {
                    return (status::OK, 0);
                }
                match self.file.sync_data() {
                    Ok(()) => {
                        self.metrics.flush_count.inc();
                        (status::OK, 0)
                    }
                    Err(_) => {
                        self.metrics.io_errors.inc();
                        (status::IOERR, 0)
                    }
                }
            }
            req::GET_ID => {
                let n = (ID_BYTES as u64).min(in_room) as usize;
                let mut w = chain.writer(&self.mem);
                if w.write_all(&self.serial[..n]).is_err() {
                    self.metrics.invalid_requests.inc();
                    return (status::IOERR, w.written() as u64);
                }
                (status::OK, n as u64)
            }
            _ => {
                self.metrics.unsupported.inc();
                (status::UNSUPP, 0)
            }
        }
    }

    /// Checks a data length and sector range against the image.
    fn extent(&self, sector: u64, len: u64) -> Option<Extent> {
        let ok = len.is_multiple_of(SECTOR_SIZE)
            && sector
                .checked_add(len / SECTOR_SIZE)
                .is_some_and(|end| end <= self.capacity);
        if !ok {
            self.metrics.invalid_requests.inc();
            return None;
        }
        Some(Extent {
            offset: sector * SECTOR_SIZE, // sector < capacity <= u64::MAX / 512
            len,
        })
    }

    /// The guest ranges of a request's data: `len` bytes of `segs` after
    /// the first `skip` bytes, into `self.ranges`.
    fn data_ranges(&mut self, segs: &[Segment], mut skip: u64, mut len: u64) {
        self.ranges.clear();
        for seg in segs {
            if len == 0 {
                break;
            }
            let seg_len = u64::from(seg.len);
            if skip >= seg_len {
                skip -= seg_len;
                continue;
            }
            let n = (seg_len - skip).min(len);
            // `seg.addr + seg.len` was checked to be inside guest memory
            // when the chain was read, so this cannot overflow.
            let addr = GuestAddress(seg.addr.0 + skip);
            self.ranges.push((addr, n));
            skip = 0;
            len -= n;
        }
    }

    fn read_in(&mut self, chain: &DescriptorChain, ext: Extent) -> (u8, u64) {
        // The data fills the writable part up to the status byte.
        self.data_ranges(chain.writable(), 0, ext.len);
        match self.mem.read_file_at(&self.file, ext.offset, &self.ranges) {
            Ok(n) if n as u64 == ext.len => {
                self.metrics.read_count.inc();
                self.metrics.read_bytes.add(ext.len);
                (status::OK, ext.len)
            }
            // Short: the image shrank under us.
            Ok(n) => {
                self.metrics.io_errors.inc();
                (status::IOERR, n as u64)
            }
            Err(FileIoError::Io(_)) => {
                self.metrics.io_errors.inc();
                (status::IOERR, 0)
            }
            Err(_) => {
                self.metrics.invalid_requests.inc();
                (status::IOERR, 0)
            }
        }
    }

    fn write_out(&mut self, chain: &DescriptorChain, ext: Extent) -> u8 {
        // The data follows the header in the readable part.
        self.data_ranges(chain.readable(), HEADER_LEN as u64, ext.len);
        match self.mem.write_file_at(&self.file, ext.offset, &self.ranges) {
            Ok(_) => {
                self.metrics.write_count.inc();
                self.metrics.write_bytes.add(ext.len);
                status::OK
            }
            Err(FileIoError::Io(_)) => {
                self.metrics.io_errors.inc();
                status::IOERR
            }
            Err(_) => {
                self.metrics.invalid_requests.inc();
                status::IOERR
            }
        }
    }
}

#[cfg(test)]
mod tests;
