//! Packet-socket receive rings (`PACKET_RX_RING` + `mmap`), emulated.
//!
//! libpcap 1.10 (tcpdump) captures only through a memory-mapped ring: a
//! failed ring setsockopt or mmap ends the capture, there is no recvfrom
//! fallback any more. The kernel's own ring cannot be mapped into the
//! program: this kernel is NOMMU, where mmap of a socket fails (EINVAL),
//! and its ring blocks are scattered kernel pages. So the ring is ours:
//!
//! - `getsockopt(PACKET_HDRLEN)` for TPACKET_V3 says EINVAL ("not
//!   supported"), which makes libpcap use TPACKET_V2's fixed frames;
//! - `setsockopt(PACKET_RX_RING)` is kept here, not given to the kernel;
//! - `mmap` of the socket returns anonymous host memory of the ring's size;
//! - whenever the program polls the socket, packets waiting in the kernel
//!   socket are moved into free frames (recvmsg with PACKET_AUXDATA for the
//!   lengths and VLAN tag), each frame laid out as the kernel's
//!   tpacket_rcv would, and handed over with TP_STATUS_USER; a ring with a
//!   frame for the program makes poll return at once.
//!
//! Only `poll` (what libpcap uses) fills rings; select and epoll on a
//! ring socket see the kernel socket's readiness only. Rings are per
//! descriptor and go with close.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use lkl::syscall::{nr, raw};

use crate::hijack::fdtable;
use crate::hijack::host::{fail, set_errno};

/// `SOL_PACKET`.
pub const SOL_PACKET: c_int = 263;
const PACKET_RX_RING: c_int = 5;
const PACKET_VERSION: c_int = 10;
const PACKET_HDRLEN: c_int = 11;
const PACKET_RESERVE: c_int = 12;
const PACKET_AUXDATA: c_int = 8;
const TPACKET_V2: c_int = 1;
const TPACKET_V3: c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_COPY: u32 = 2;
/// Frame alignment (`TPACKET_ALIGNMENT`).
const ALIGN: usize = 16;
/// `sizeof(struct tpacket2_hdr)`.
const HDR2: usize = 32;
/// `TPACKET2_HDRLEN`: the header, aligned, then a `sockaddr_ll`.
const HDRLEN2: usize = align(HDR2) + std::mem::size_of::<libc::sockaddr_ll>();

const fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// `struct tpacket_req`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Req {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Default)]
struct AuxData {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    vlan_tci: u16,
    vlan_tpid: u16,
}

/// One emulated ring.
struct Ring {
    /// The program's descriptor (the placeholder number).
    fd: c_int,
    req: Req,
    /// Datagram (cooked) socket: the frame holds no link header.
    dgram: bool,
    reserve: usize,
    /// The mapping, once the program has mmap'ed it (0 before).
    base: usize,
    /// The next frame to fill.
    next: usize,
}

impl Ring {
    fn len(&self) -> usize {
        self.req.block_size as usize * self.req.block_nr as usize
    }

    fn frames_per_block(&self) -> usize {
        (self.req.block_size / self.req.frame_size) as usize
    }

    /// Address of frame `i` (frames never straddle blocks).
    fn frame(&self, i: usize) -> *mut u8 {
        let fpb = self.frames_per_block();
        let off =
            (i / fpb) * self.req.block_size as usize + (i % fpb) * self.req.frame_size as usize;
        (self.base + off) as *mut u8
    }

    fn status(&self, i: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: every frame starts with the 4-byte, 16-aligned tp_status
        // inside our live mapping.
        unsafe { &*(self.frame(i) as *const std::sync::atomic::AtomicU32) }
    }

    /// Whether some frame belongs to the program.
    fn has_user_frame(&self) -> bool {
        self.base != 0
            && (0..self.req.frame_nr as usize)
                .any(|i| self.status(i).load(Ordering::Acquire) & TP_STATUS_USER != 0)
    }

    /// Moves waiting packets from the kernel socket into free frames.
    fn pump(&mut self, kfd: i32) {
        if self.base == 0 {
            return;
        }
        let n = self.req.frame_nr as usize;
        let fsize = self.req.frame_size as usize;
        for _ in 0..n {
            let i = self.next;
            if self.status(i).load(Ordering::Acquire) != TP_STATUS_KERNEL {
                return; // the program has not given this frame back yet
            }
            let frame = self.frame(i);
            // Where the packet goes, as tpacket_rcv computes it (Ethernet:
            // a 14-byte link header; cooked sockets have none).
            let maclen = if self.dgram { 0 } else { 14 };
            let netoff = if self.dgram {
                align(HDRLEN2) + 16 + self.reserve
            } else {
                align(HDRLEN2 + maclen.max(16)) + self.reserve
            };
            let macoff = netoff - maclen;
            if macoff >= fsize {
                return;
            }
            // SAFETY: an all-zero sockaddr_ll is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut cbuf = [0u64; 16];
            let mut iov = libc::iovec {
                iov_base: frame.wrapping_add(macoff).cast(),
                iov_len: fsize - macoff,
            };
            // SAFETY: an all-zero msghdr is valid; fields set below.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            // SAFETY: the msghdr points at our locals and at the free frame
            // (inside the mapping, fsize - macoff bytes from macoff).
            let got = unsafe {
                raw(
                    nr::RECVMSG,
                    [
                        kfd.into(),
                        &mut msg as *mut libc::msghdr as i64,
                        i64::from(libc::MSG_DONTWAIT | libc::MSG_TRUNC),
                        0,
                        0,
                        0,
                    ],
                )
            };
            let Ok(len) = got else {
                return; // EAGAIN: nothing more waiting
            };
            let mut aux = AuxData::default();
            // SAFETY: walks the control buffer the kernel filled
            // (msg_controllen bytes), reading one tpacket_auxdata.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                        std::ptr::copy_nonoverlapping(
                            libc::CMSG_DATA(c),
                            (&mut aux as *mut AuxData).cast::<u8>(),
                            std::mem::size_of::<AuxData>(),
                        );
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            let wire_len = if aux.len != 0 { aux.len } else { len as u32 };
            let snap = (len as usize).min(fsize - macoff) as u32;
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: writes the current time into a local.
            unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
            // SAFETY: the frame's header and sockaddr_ll lie inside it
            // (frame_size >= TPACKET2_HDRLEN was checked at setsockopt).
            unsafe {
                let h = frame;
                (h.add(4) as *mut u32).write(wire_len);
                (h.add(8) as *mut u32).write(snap);
                (h.add(12) as *mut u16).write(macoff as u16);
                (h.add(14) as *mut u16).write(netoff as u16);
                (h.add(16) as *mut u32).write(ts.tv_sec as u32);
                (h.add(20) as *mut u32).write(ts.tv_nsec as u32);
                (h.add(24) as *mut u16).write(aux.vlan_tci);
                (h.add(26) as *mut u16).write(aux.vlan_tpid);
                std::ptr::copy_nonoverlapping(
                    (&from as *const libc::sockaddr_ll).cast::<u8>(),
                    h.add(align(HDR2)),
                    std::mem::size_of::<libc::sockaddr_ll>(),
                );
            }
            let mut status = TP_STATUS_USER | (aux.status & !(TP_STATUS_USER | TP_STATUS_COPY));
            if len as usize > fsize - macoff {
                status |= TP_STATUS_COPY;
            }
            self.status(i).store(status, Ordering::Release);
            self.next = (i + 1) % n;
        }
    }
}

/// Rings by descriptor. `COUNT` lets poll skip the lock when there are none.
static RINGS: Mutex<Vec<Ring>> = Mutex::new(Vec::new());
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn rings() -> std::sync::MutexGuard<'static, Vec<Ring>> {
    RINGS.lock().unwrap_or_else(|e| e.into_inner())
}

fn kernel_int_opt(kfd: i32, level: c_int, name: c_int) -> Option<c_int> {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as u32;
    // SAFETY: an int and its length, both ours.
    unsafe {
        raw(
            nr::GETSOCKOPT,
            [
                kfd.into(),
                level.into(),
                name.into(),
                &mut v as *mut c_int as i64,
                &mut len as *mut u32 as i64,
                0,
            ],
        )
    }
    .ok()
    .map(|_| v)
}

/// `getsockopt` on a kernel socket: Some(result) when this module answers.
pub fn getsockopt(level: c_int, name: c_int, val: *mut c_void) -> Option<c_int> {
    if level != SOL_PACKET || name != PACKET_HDRLEN || val.is_null() {
        return None;
    }
    // SAFETY: PACKET_HDRLEN takes the version in an int the caller gives.
    let version = unsafe { *(val as *const c_int) };
    (version == TPACKET_V3).then(|| fail(libc::EINVAL))
}

/// `setsockopt` on a kernel socket: Some(result) when this module answers.
pub fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: u32,
) -> Option<c_int> {
    if level != SOL_PACKET {
        return None;
    }
    if name == PACKET_VERSION && !val.is_null() && len as usize >= 4 {
        // SAFETY: an int, as the length says.
        if unsafe { *(val as *const c_int) } == TPACKET_V3 {
            return Some(fail(libc::EINVAL));
        }
        return None;
    }
    if name != PACKET_RX_RING {
        return None;
    }
    let kfd = fdtable::kernel_fd(fd)?;
    if val.is_null() || (len as usize) < std::mem::size_of::<Req>() {
        return Some(fail(libc::EINVAL));
    }
    // SAFETY: at least a tpacket_req, as checked.
    let req = unsafe { *(val as *const Req) };
    let mut all = rings();
    if req.block_nr == 0 && req.frame_nr == 0 {
        // Tear down.
        if let Some(pos) = all.iter().position(|r| r.fd == fd) {
            all.remove(pos);
            COUNT.fetch_sub(1, Ordering::AcqRel);
        }
        return Some(0);
    }
    if kernel_int_opt(kfd, SOL_PACKET, PACKET_VERSION) != Some(TPACKET_V2) {
        // Only TPACKET_V2 frames are emulated (V1 is long obsolete).
        return Some(fail(libc::EINVAL));
    }
    let page = 4096u32;
    let ok = req.block_size > 0
        && req.block_size.is_multiple_of(page)
        && req.frame_size as usize >= HDRLEN2
        && (req.frame_size as usize).is_multiple_of(ALIGN)
        && req.frame_size <= req.block_size
        && req.frame_nr == (req.block_size / req.frame_size) * req.block_nr
        && (req.block_size as u64) * (req.block_nr as u64) <= 1 << 30;
    if !ok {
        return Some(fail(libc::EINVAL));
    }
    if all.iter().any(|r| r.fd == fd) {
        return Some(fail(libc::EBUSY));
    }
    let reserve = kernel_int_opt(kfd, SOL_PACKET, PACKET_RESERVE)
        .unwrap_or(0)
        .max(0) as usize;
    let dgram = kernel_int_opt(kfd, libc::SOL_SOCKET, libc::SO_TYPE) == Some(libc::SOCK_DGRAM);
    let one: c_int = 1;
    // SAFETY: an int option from a local.
    let _ = unsafe {
        raw(
            nr::SETSOCKOPT,
            [
                kfd.into(),
                SOL_PACKET.into(),
                PACKET_AUXDATA.into(),
                &one as *const c_int as i64,
                4,
                0,
            ],
        )
    };
    all.push(Ring {
        fd,
        req,
        dgram,
        reserve,
        base: 0,
        next: 0,
    });
    COUNT.fetch_add(1, Ordering::AcqRel);
    Some(0)
}

/// Whether any ring exists (one atomic load).
#[inline]
pub fn any() -> bool {
    COUNT.load(Ordering::Acquire) != 0
}

/// `mmap` of descriptor `fd`: Some(mapping or MAP_FAILED) when it has a
/// ring, None otherwise.
pub fn map(fd: c_int, len: usize, off: i64) -> Option<*mut c_void> {
    if COUNT.load(Ordering::Acquire) == 0 {
        return None;
    }
    let mut all = rings();
    let ring = all.iter_mut().find(|r| r.fd == fd)?;
    if off != 0 || len < ring.len() || ring.base != 0 {
        set_errno(libc::EINVAL);
        return Some(libc::MAP_FAILED);
    }
    // SAFETY: a fresh anonymous mapping (zeroed: every frame
    // TP_STATUS_KERNEL), straight to the host kernel.
    let p = unsafe {
        crate::hijack::host::host_syscall!(
            libc::SYS_mmap,
            0usize,
            ring.len(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0usize,
        )
    };
    if p == -1 {
        return Some(libc::MAP_FAILED);
    }
    ring.base = p as usize;
    Some(p as *mut c_void)
}

/// Forgets the ring of `fd` (closed).
pub fn forget(fd: c_int) {
    if COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let mut all = rings();
    if let Some(pos) = all.iter().position(|r| r.fd == fd) {
        all.remove(pos);
        COUNT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Before a poll: fills the rings among `set` from their kernel sockets.
/// Returns whether some polled ring already has a frame for the program
/// (then the poll must not block).
pub fn before_poll(set: &[libc::pollfd]) -> bool {
    if COUNT.load(Ordering::Acquire) == 0 {
        return false;
    }
    let mut all = rings();
    let mut ready = false;
    for p in set {
        if let Some(ring) = all.iter_mut().find(|r| r.fd == p.fd) {
            if let Some(kfd) = fdtable::kernel_fd(p.fd) {
                ring.pump(kfd);
            }
            ready |= ring.has_user_frame();
        }
    }
    ready
}

/// After a poll: fills the rings again (what made them readable) and marks
/// a ring with a frame for the program readable. Returns how many entries
/// became ready that were not.
pub fn after_poll(set: &mut [libc::pollfd]) -> c_int {
    if COUNT.load(Ordering::Acquire) == 0 {
        return 0;
    }
    let mut all = rings();
    let mut added = 0;
    for p in set.iter_mut() {
        if let Some(ring) = all.iter_mut().find(|r| r.fd == p.fd) {
            if let Some(kfd) = fdtable::kernel_fd(p.fd) {
                ring.pump(kfd);
            }
            let was = p.revents != 0;
            if ring.has_user_frame() && p.events & libc::POLLIN != 0 {
                p.revents |= libc::POLLIN;
            } else {
                // Readable only in the kernel: the program looks at its
                // ring, not the socket, so this is not news.
                p.revents &= !libc::POLLIN;
            }
            added += c_int::from(p.revents != 0) - c_int::from(was);
        }
    }
    added
}
