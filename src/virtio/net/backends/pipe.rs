//! The `pipe` backend: two named FIFOs, one per direction, so that two
//! programs (two kernels, usually) share a wire. The peer opens the same
//! two FIFOs the other way round (`rx|tx` here is `tx|rx` there).
//!
//! **Framing.** A FIFO is a byte stream: a read returns whatever bytes are
//! there, across write boundaries, and a non-blocking write bigger than
//! `PIPE_BUF` (4 KiB) may be cut short. LKL nevertheless writes bare frames
//! and takes each `readv` for one frame, so two frames written before the
//! reader wakes are read as one (the second lost) and big frames tear. Here
//! every frame on a FIFO is a 4-byte little-endian length followed by that
//! many bytes (1 to [`PIPE_FRAME_MAX`]): the 12-byte `virtio_net_hdr_v1`
//! then the Ethernet frame. The header is always there, as in LKL (both
//! ends must agree, whatever their offloads). **Not compatible with LKL's
//! pipe backend on the other end.** A length out of range means the writer
//! speaks something else; the backend then stops (the device sees a
//! hang-up) and [`Pipe::failure`] says why.
//!
//! **One descriptor.** The device polls a single fd for both directions,
//! so a relay thread moves frames between the FIFOs and a `SOCK_SEQPACKET`
//! socket pair whose other end is the backend: a message on the socket is
//! one frame, and a full FIFO or a slow device is back-pressure, not loss.
//! The FIFOs are opened read-write (as LKL), so opening never waits for
//! the peer and a peer that restarts is picked up again.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use super::error::{BackendError, Cause};
use super::spec::BackendKind;
use super::{frame_fd_backend, FrameFd, FrameIo};
use crate::virtio::hostio::{self as vio, EventFd, Interest, PollSet};
use crate::virtio::net::FRAME_BUF_LEN;

/// The largest frame on a FIFO, header included (the device's own limit).
pub const PIPE_FRAME_MAX: usize = FRAME_BUF_LEN;
/// Bytes of the length prefix.
const LEN_BYTES: usize = 4;
/// Frames moved in one direction before the relay looks at the other.
const BURST: usize = 64;

/// Two FIFOs, through a relay thread.
pub struct Pipe {
    link: FrameFd,
    stop: Arc<EventFd>,
    relay: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
    rx: PathBuf,
    tx: PathBuf,
}

impl Pipe {
    /// Opens the FIFOs `rx` (frames in) and `tx` (frames out), which must
    /// exist (`mkfifo`), and starts the relay.
    pub fn open(rx: &Path, tx: &Path) -> Result<Pipe, BackendError> {
        let param = format!("{}|{}", rx.display(), tx.display());
        let err = |cause| BackendError::new(BackendKind::Pipe, &param, cause);
        let rx_file = open_fifo(rx).map_err(err)?;
        let tx_file = open_fifo(tx).map_err(err)?;
        let same = match (rx_file.metadata(), tx_file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same {
            return Err(err(Cause::BadParam(
                "rx and tx are the same FIFO; each direction needs its own".into(),
            )));
        }
        let os = |what: &str, e| BackendError::os(BackendKind::Pipe, &param, what, e, None);
        let (ours, theirs) = vio::seqpacket_pair().map_err(|e| os("socketpair", e))?;
        vio::set_nonblocking(theirs.as_fd()).map_err(|e| os("socketpair", e))?;
        let stop = Arc::new(EventFd::new().map_err(|e| os("eventfd", e))?);
        let failure = Arc::new(Mutex::new(None));
        let relay = Relay {
            rx: rx_file,
            tx: tx_file,
            link: theirs,
            stop: Arc::clone(&stop),
            inbound: Decoder::new(),
            out: vec![0; LEN_BYTES + PIPE_FRAME_MAX].into_boxed_slice(),
            out_pos: 0,
            out_len: 0,
        };
        let report = Arc::clone(&failure);
        let handle = thread::Builder::new()
            .name("lkl-pipe".into())
            .spawn(move || {
                if let Err(why) = relay.run() {
                    if let Ok(mut slot) = report.lock() {
                        *slot = Some(why);
                    }
                }
            })
            .map_err(|e| os("relay thread", e))?;
        Ok(Pipe {
            link: FrameFd::new(ours, FrameIo::Message),
            stop,
            relay: Some(handle),
            failure,
            rx: rx.to_path_buf(),
            tx: tx.to_path_buf(),
        })
    }

    /// Why the relay stopped on its own (a FIFO error, or a peer that does
    /// not speak this framing), if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|g| g.clone())
    }
}

/// Opens a FIFO read-write and non-blocking, checking that it is one.
fn open_fifo(path: &Path) -> Result<File, Cause> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| {
            let hint = match error.raw_os_error() {
                Some(libc::ENOENT) => Some("make it with mkfifo".into()),
                Some(libc::EACCES) => Some("it must be readable and writable by this user".into()),
                _ => None,
            };
            Cause::Os {
                what: path.display().to_string(),
                error,
                hint,
            }
        })?;
    let is_fifo = file
        .metadata()
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false);
    if !is_fifo {
        return Err(Cause::BadParam(format!(
            "{} is not a FIFO (make one with mkfifo)",
            path.display()
        )));
    }
    Ok(file)
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // The relay sleeps only in poll, with `stop` in the set, and never
        // blocks otherwise: the join is prompt.
        let _ = self.stop.notify();
        if let Some(h) = self.relay.take() {
            let _ = h.join();
        }
    }
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("rx", &self.rx)
            .field("tx", &self.tx)
            .field("fd", &self.link.as_raw_fd())
            .finish()
    }
}

frame_fd_backend!(Pipe, link, vnet_hdr: true);

/// Splits the byte stream of the rx FIFO into frames.
struct Decoder {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Decoder {
    fn new() -> Self {
        Decoder {
            // Room for a whole frame after any partial one.
            buf: vec![0; 2 * (LEN_BYTES + PIPE_FRAME_MAX)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The next complete frame in the buffer, or `None` if more bytes are
    /// needed; an error if the length prefix is out of range.
    fn frame(&self) -> Result<Option<Range<usize>>, String> {
        let avail = &self.buf[self.start..self.end];
        let Some(prefix) = avail.first_chunk::<LEN_BYTES>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if len == 0 || len > PIPE_FRAME_MAX {
            return Err(format!(
                "frame length {len} on the rx FIFO is out of range (1..={PIPE_FRAME_MAX}): \
                 the writer does not use length-prefixed frames"
            ));
        }
        if avail.len() < LEN_BYTES + len {
            return Ok(None);
        }
        let at = self.start + LEN_BYTES;
        Ok(Some(at..at + len))
    }

    /// Drops the frame [`frame`](Self::frame) returned.
    fn consume(&mut self, frame: Range<usize>) {
        self.start = frame.end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space to read into; never empty while no complete frame is
    /// buffered, since a partial frame is smaller than half the buffer.
    fn space(&mut self) -> &mut [u8] {
        if self.start > 0 && self.buf.len() - self.end < LEN_BYTES + PIPE_FRAME_MAX {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    fn filled(&mut self, n: usize) {
        self.end += n;
    }
}

/// Why the relay stopped.
enum Stop {
    /// The backend is gone (dropped, or its socket closed).
    Done,
    /// Something broke; the text says what.
    Failed(String),
}

const STOP: u32 = 0;
const RX: u32 = 1;
const TX: u32 = 2;
const LINK: u32 = 3;

/// The relay thread's state.
struct Relay {
    rx: File,
    tx: File,
    link: OwnedFd,
    stop: Arc<EventFd>,
    inbound: Decoder,
    /// The frame being written to the tx FIFO, prefix included.
    out: Box<[u8]>,
    out_pos: usize,
    out_len: usize,
}

impl Relay {
    /// Runs until the backend goes away (`Ok`) or something breaks.
    fn run(mut self) -> Result<(), String> {
        let mut set = PollSet::new();
        loop {
            match self.pump_in().and_then(|()| self.pump_out()) {
                Ok(()) => {}
                Err(Stop::Done) => return Ok(()),
                Err(Stop::Failed(why)) => return Err(why),
            }
            // A decoded frame waiting for room on the link stops reading
            // the FIFO: back-pressure goes to the writer.
            let in_waiting = matches!(self.inbound.frame(), Ok(Some(_)));
            let out_busy = self.out_pos < self.out_len;
            set.clear();
            set.add(self.stop.as_raw_fd(), STOP, Interest::READ);
            if !in_waiting {
                set.add(self.rx.as_raw_fd(), RX, Interest::READ);
            }
            if out_busy {
                set.add(self.tx.as_raw_fd(), TX, Interest::WRITE);
            }
            set.add(
                self.link.as_raw_fd(),
                LINK,
                Interest {
                    read: !out_busy,
                    write: in_waiting,
                },
            );
            set.wait(None)
                .map_err(|e| format!("poll: {}", super::error::describe(&e)))?;
            for (token, r) in set.ready() {
                match token {
                    STOP => return Ok(()),
                    LINK if r.hangup || r.error => return Ok(()),
                    RX | TX if r.error => {
                        return Err(format!(
                            "{} FIFO reported an error",
                            if token == RX { "rx" } else { "tx" }
                        ))
                    }
                    _ => {}
                }
            }
        }
    }

    /// Moves frames from the rx FIFO to the link until either blocks.
    fn pump_in(&mut self) -> Result<(), Stop> {
        let mut frames = 0;
        while frames < BURST {
            if let Some(frame) = self.inbound.frame().map_err(Stop::Failed)? {
                let sent = vio::send_vectored(
                    self.link.as_fd(),
                    &[IoSlice::new(&self.inbound.buf[frame.clone()])],
                );
                match sent {
                    Ok(_) => {
                        self.inbound.consume(frame);
                        frames += 1;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // EPIPE/ECONNRESET: the backend is gone.
                    Err(_) => return Err(Stop::Done),
                }
            }
            match (&self.rx).read(self.inbound.space()) {
                // A FIFO we also hold for writing never ends.
                Ok(0) => return Ok(()),
                Ok(n) => self.inbound.filled(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Stop::Failed(format!(
                        "read from the rx FIFO: {}",
                        super::error::describe(&e)
                    )))
                }
            }
        }
        Ok(())
    }

    /// Moves frames from the link to the tx FIFO until either blocks.
    fn pump_out(&mut self) -> Result<(), Stop> {
        let mut frames = 0;
        while frames < BURST {
            if self.out_pos < self.out_len {
                match (&self.tx).write(&self.out[self.out_pos..self.out_len]) {
                    Ok(n) => self.out_pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(Stop::Failed(format!(
                            "write to the tx FIFO: {}",
                            super::error::describe(&e)
                        )))
                    }
                }
                continue;
            }
            let got = vio::recv_vectored(
                self.link.as_fd(),
                &mut [IoSliceMut::new(&mut self.out[LEN_BYTES..])],
            );
            match got {
                // Nothing, or the backend closed (its hang-up ends us).
                Ok((0, _)) => return Ok(()),
                // Bigger than any frame the device makes: dropped.
                Ok((_, true)) => {}
                Ok((n, false)) => {
                    // n <= PIPE_FRAME_MAX < 2^32.
                    self.out[..LEN_BYTES].copy_from_slice(&(n as u32).to_le_bytes());
                    self.out_pos = 0;
                    self.out_len = LEN_BYTES + n;
                    frames += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Stop::Done),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::net::backends::hostio::mkfifo;
    use crate::virtio::net::backends::test_utils::{
        frame, recv_frame, send_frame, wait_readable, TempDir,
    };
    use crate::virtio::net::NetBackend;
    use std::time::{Duration, Instant};

    fn fifo_pair(dir: &TempDir) -> (PathBuf, PathBuf) {
        let (a, b) = (dir.0.join("a2b"), dir.0.join("b2a"));
        mkfifo(&a, 0o600).unwrap();
        mkfifo(&b, 0o600).unwrap();
        (a, b)
    }

    #[test]
    fn two_pipes_exchange_frames_with_boundaries_kept() {
        let dir = TempDir::new("pipe");
        let (a2b, b2a) = fifo_pair(&dir);
        let mut a = Pipe::open(&b2a, &a2b).unwrap();
        let mut b = Pipe::open(&a2b, &b2a).unwrap();
        assert!(a.has_vnet_hdr() && b.has_vnet_hdr());

        // Many small frames written back to back: LKL's framing would read
        // several as one.
        let small: Vec<Vec<u8>> = (0..50).map(|i| frame(60 + i, i as u8)).collect();
        for f in &small {
            send_frame(&mut a, f);
        }
        for f in &small {
            assert_eq!(&recv_frame(&mut b), f);
        }
        // Frames bigger than PIPE_BUF, and the largest there is, both ways.
        for len in [5000, 65000, PIPE_FRAME_MAX] {
            let f = frame(len, 7);
            send_frame(&mut b, &f);
            assert_eq!(recv_frame(&mut a), f, "{len} bytes");
        }
        assert!(a.failure().is_none() && b.failure().is_none());
    }

    #[test]
    fn a_peer_that_is_not_running_is_back_pressure() {
        let dir = TempDir::new("pipe");
        let (a2b, b2a) = fifo_pair(&dir);
        let mut a = Pipe::open(&b2a, &a2b).unwrap();
        // Nobody reads a2b: the FIFO, then the link fill, then `send`
        // reports WouldBlock instead of losing frames.
        let f = frame(1500, 1);
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match a.send(&[IoSlice::new(&f)]) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Let the relay catch up; full only if still blocked.
                    thread::sleep(Duration::from_millis(20));
                    if a.send(&[IoSlice::new(&f)]).is_err() {
                        break;
                    }
                    sent += 1;
                }
                Err(e) => panic!("send: {e}"),
            }
            assert!(Instant::now() < deadline, "never full");
        }
        assert!(sent > 30, "the FIFO holds 64 KiB: {sent}");
        // A late peer gets every one of them, in order.
        let mut b = Pipe::open(&a2b, &b2a).unwrap();
        for _ in 0..sent {
            assert_eq!(recv_frame(&mut b), f);
        }
    }

    #[test]
    fn a_peer_speaking_bare_frames_stops_the_backend() {
        let dir = TempDir::new("pipe");
        let (a2b, b2a) = fifo_pair(&dir);
        let a = Pipe::open(&b2a, &a2b).unwrap();
        // An LKL-style peer: a bare frame, whose first bytes (a vnet
        // header, then a MAC) make no sensible length.
        let mut w = OpenOptions::new().write(true).open(&b2a).unwrap();
        w.write_all(&[0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])
            .unwrap();
        let r = wait_readable(a.as_raw_fd());
        assert!(r.hangup, "the device sees a hang-up: {r:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while a.failure().is_none() {
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(5));
        }
        assert!(
            a.failure().unwrap().contains("out of range"),
            "{:?}",
            a.failure()
        );
    }

    #[test]
    fn bad_paths_are_named() {
        let dir = TempDir::new("pipe");
        let (a2b, _) = fifo_pair(&dir);
        let missing = dir.0.join("missing");
        let e = Pipe::open(&missing, &a2b).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "pipe {m}|{t}: {m}: no such file or directory (make it with mkfifo)",
                m = missing.display(),
                t = a2b.display()
            )
        );
        let file = dir.0.join("plain");
        std::fs::write(&file, b"").unwrap();
        let e = Pipe::open(&a2b, &file).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("plain is not a FIFO (make one with mkfifo)"),
            "{e}"
        );
        let e = Pipe::open(&a2b, &a2b).unwrap_err();
        assert!(e.to_string().contains("the same FIFO"), "{e}");
    }

    #[test]
    fn decoder_splits_and_rejects() {
        let mut d = Decoder::new();
        let feed = |d: &mut Decoder, bytes: &[u8]| {
            d.space()[..bytes.len()].copy_from_slice(bytes);
            d.filled(bytes.len());
        };
        feed(&mut d, &[3, 0]);
        assert_eq!(d.frame(), Ok(None), "half a prefix");
        feed(&mut d, &[0, 0, b'a', b'b']);
        assert_eq!(d.frame(), Ok(None), "half a frame");
        feed(&mut d, &[b'c', 1, 0, 0, 0, b'z']);
        let f = d.frame().unwrap().unwrap();
        assert_eq!(&d.buf[f.clone()], b"abc");
        d.consume(f);
        let f = d.frame().unwrap().unwrap();
        assert_eq!(&d.buf[f.clone()], b"z");
        d.consume(f);
        assert_eq!((d.start, d.end), (0, 0));
        feed(&mut d, &0u32.to_le_bytes());
        assert!(d.frame().is_err(), "empty frame");
        let mut d = Decoder::new();
        feed(&mut d, &(PIPE_FRAME_MAX as u32 + 1).to_le_bytes());
        assert!(d.frame().is_err(), "too long");
    }
}
