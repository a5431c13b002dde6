//! The virtio-net device (virtio 1.2, 5.1 "Network Device"), device ID 1.
//!
//! - [`Net`] ([`device`]) is the device model: two queues (receiveq1,
//!   transmitq1), the MAC and link status in configuration space, the
//!   offload features LKL exposes, mergeable receive buffers. Frames move
//!   on a worker thread between the queues and a [`NetBackend`].
//! - [`NetBackend`] ([`backend`]) is the seam to the host side of the wire
//!   (tap, raw socket, a socket pair...); [`SocketPairBackend`] is the
//!   in-process one, for tests and for plumbing two programs together.
//! - This file holds the constants, the 12-byte `virtio_net_hdr_v1`, the
//!   software checksum used when a backend cannot take partial checksums,
//!   and the error type.
//!
//! What this layer guarantees: frames are bounded by [`FRAME_BUF_LEN`]; a
//! transmit chain that is too short, too long or carries an impossible
//! header is completed and counted, never sent half-parsed; a received
//! frame reaches the driver only with a header its negotiated features
//! allow (5.1.6.4.1), or is dropped and counted.

#![deny(unsafe_code)]

pub mod backend;
pub mod backends;
pub mod device;

use std::fmt;

pub use backend::{NetBackend, SocketPairBackend};
pub use device::{Net, NetMetrics};

/// Index of receiveq1.
pub const RX_INDEX: usize = 0;
/// Index of transmitq1.
pub const TX_INDEX: usize = 1;
/// Size of each queue offered (`QueueNumMax`).
pub const NET_QUEUE_MAX_SIZE: u16 = 256;
/// Length of `struct virtio_net_hdr_v1` (with `num_buffers`): always 12
/// with `VIRTIO_F_VERSION_1` (5.1.6: the legacy 10-byte form is gone).
pub const VNET_HDR_LEN: usize = 12;
/// Largest frame handled, header included: 12 + 65550 (an Ethernet header
/// plus a 64 KiB GSO packet), as Firecracker.
pub const FRAME_BUF_LEN: usize = VNET_HDR_LEN + 65550;

/// virtio-net feature bits, as masks (5.1.3). These are exactly the ones
/// LKL's `offload` option can turn on.
pub mod features {
    /// `VIRTIO_NET_F_CSUM` (0): device handles partial checksums.
    pub const CSUM: u64 = 1 << 0;
    /// `VIRTIO_NET_F_GUEST_CSUM` (1): driver handles partial checksums.
    pub const GUEST_CSUM: u64 = 1 << 1;
    /// `VIRTIO_NET_F_MAC` (5): the device has a MAC address.
    pub const MAC: u64 = 1 << 5;
    /// `VIRTIO_NET_F_GUEST_TSO4` (7).
    pub const GUEST_TSO4: u64 = 1 << 7;
    /// `VIRTIO_NET_F_GUEST_TSO6` (8).
    pub const GUEST_TSO6: u64 = 1 << 8;
    /// `VIRTIO_NET_F_GUEST_UFO` (10).
    pub const GUEST_UFO: u64 = 1 << 10;
    /// `VIRTIO_NET_F_HOST_TSO4` (11).
    pub const HOST_TSO4: u64 = 1 << 11;
    /// `VIRTIO_NET_F_HOST_TSO6` (12).
    pub const HOST_TSO6: u64 = 1 << 12;
    /// `VIRTIO_NET_F_HOST_UFO` (14).
    pub const HOST_UFO: u64 = 1 << 14;
    /// `VIRTIO_NET_F_MRG_RXBUF` (15): mergeable receive buffers.
    pub const MRG_RXBUF: u64 = 1 << 15;
    /// `VIRTIO_NET_F_STATUS` (16): link status in configuration space.
    pub const STATUS: u64 = 1 << 16;

    /// Every feature this device implements.
    pub const SUPPORTED: u64 = CSUM
        | GUEST_CSUM
        | MAC
        | GUEST_TSO4
        | GUEST_TSO6
        | GUEST_UFO
        | HOST_TSO4
        | HOST_TSO6
        | HOST_UFO
        | MRG_RXBUF
        | STATUS;
    /// Segmentation the device would have to do on transmit.
    pub const HOST_GSO: u64 = HOST_TSO4 | HOST_TSO6 | HOST_UFO;
    /// Segmented frames the driver accepts on receive.
    pub const GUEST_GSO: u64 = GUEST_TSO4 | GUEST_TSO6 | GUEST_UFO;

    /// 5.1.3.1 "Feature bit requirements", for the features we have:
    /// `(feature, requires, names)`.
    pub(crate) const DEPENDENCIES: [(u64, u64, &str); 6] = [
        (GUEST_TSO4, GUEST_CSUM, "GUEST_TSO4 requires GUEST_CSUM"),
        (GUEST_TSO6, GUEST_CSUM, "GUEST_TSO6 requires GUEST_CSUM"),
        (GUEST_UFO, GUEST_CSUM, "GUEST_UFO requires GUEST_CSUM"),
        (HOST_TSO4, CSUM, "HOST_TSO4 requires CSUM"),
        (HOST_TSO6, CSUM, "HOST_TSO6 requires CSUM"),
        (HOST_UFO, CSUM, "HOST_UFO requires CSUM"),
    ];

    /// The first dependency `f` violates, if any.
    pub(crate) fn missing_dependency(f: u64) -> Option<&'static str> {
        DEPENDENCIES
            .iter()
            .find(|(feat, req, _)| f & feat != 0 && f & req == 0)
            .map(|(_, _, why)| *why)
    }
}

/// `VIRTIO_NET_S_LINK_UP` in the configuration `status` field.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;

/// `flags`: the checksum from `csum_start` on is still to be computed.
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum was already verified.
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
/// `gso_type`: not a segmented frame.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4.
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// `gso_type`: UDP (fragmentation).
pub const VIRTIO_NET_HDR_GSO_UDP: u8 = 3;
/// `gso_type`: TCP over IPv6.
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
/// `gso_type` modifier: ECN.
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// `struct virtio_net_hdr_v1` (5.1.6), the 12 bytes in front of every
/// frame in both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Length of the headers to replicate when segmenting.
    pub hdr_len: u16,
    /// Segment size.
    pub gso_size: u16,
    /// Where checksumming starts.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
    /// Receive buffers the frame spans (set by the device).
    pub num_buffers: u16,
}

impl VirtioNetHdr {
    /// Decodes the little-endian layout.
    pub fn from_bytes(b: &[u8; VNET_HDR_LEN]) -> Self {
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
            num_buffers: le(10),
        }
    }

    /// Encodes the little-endian layout.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (i, v) in [
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
            self.num_buffers,
        ]
        .into_iter()
        .enumerate()
        {
            b[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// Ones' complement sum of `data` as 16-bit big-endian words (RFC 1071),
/// unfolded.
fn ones_sum(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u64 = chunks
        .by_ref()
        .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Finishes a partial checksum in software, as Linux's
/// `skb_checksum_help`: the ones' complement sum of `frame[start..]` (the
/// field at `start + offset` holds the pseudo-header sum, 5.1.6.2), folded
/// and complemented, stored at `start + offset` (0 is sent as 0xffff, which
/// means the same and keeps UDP's "no checksum" meaning out of reach).
/// Returns false, leaving `frame` unchanged, if the offsets do not fit.
pub fn complete_checksum(frame: &mut [u8], start: u16, offset: u16) -> bool {
    let start = usize::from(start);
    let pos = start + usize::from(offset); // both < 2^16: no overflow
    if pos + 2 > frame.len() {
        return false;
    }
    let c = !fold(ones_sum(&frame[start..]));
    let c = if c == 0 { 0xffff } else { c };
    frame[pos..pos + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Errors of creating a net device: all are configuration mistakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// Feature bits this device does not implement.
    UnsupportedFeatures(u64),
    /// A feature offered without one it requires (5.1.3.1: "The device MUST
    /// NOT offer a feature which requires another feature which was not
    /// offered").
    MissingDependency(&'static str),
    /// Transmit segmentation (`HOST_TSO4/6`, `HOST_UFO`) needs a backend
    /// that takes the virtio-net header: we cannot segment in software.
    HostGsoNeedsVnetHdr,
    /// `VIRTIO_NET_F_MAC` in the features but no MAC address given.
    MacMissing,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::UnsupportedFeatures(b) => write!(f, "unsupported virtio-net features {b:#x}"),
            NetError::MissingDependency(why) => write!(f, "invalid virtio-net features: {why}"),
            NetError::HostGsoNeedsVnetHdr => {
                write!(
                    f,
                    "transmit segmentation offload needs a backend with a vnet header"
                )
            }
            NetError::MacMissing => write!(f, "VIRTIO_NET_F_MAC requested without a MAC address"),
        }
    }
}

impl std::error::Error for NetError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN,
            hdr_len: 0x0102,
            gso_size: 0x0304,
            csum_start: 0x0506,
            csum_offset: 0x0708,
            num_buffers: 0x090a,
        };
        let b = h.to_bytes();
        assert_eq!(b, [1, 0x84, 2, 1, 4, 3, 6, 5, 8, 7, 0xa, 9]);
        assert_eq!(VirtioNetHdr::from_bytes(&b), h);
    }

    #[test]
    fn checksum_matches_rfc1071() {
        // RFC 1071's example words sum to 0xddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(ones_sum(&data)), 0xddf2);
        // An odd byte counts as the high half of a word.
        assert_eq!(ones_sum(&[0x12]), 0x1200);
    }

    #[test]
    fn completes_a_partial_checksum() {
        // A 14-byte "Ethernet" header, then a fake transport segment whose
        // checksum field (offset 6) holds a pseudo-header sum.
        let pseudo: u16 = 0x1c46;
        let mut frame = vec![0xaau8; 14];
        frame.extend_from_slice(&[
            0x12, 0x34, 0x56, 0x78, 0x00, 0x0b, 0, 0, b'h', b'e', b'l', b'l', b'o',
        ]);
        frame[20..22].copy_from_slice(&pseudo.to_be_bytes());
        assert!(complete_checksum(&mut frame, 14, 6));
        // Verification as a receiver does: the sum over the segment plus
        // the pseudo header is all ones.
        assert_eq!(fold(ones_sum(&frame[14..]) + u64::from(pseudo)), 0xffff);
        // Offsets past the end are refused without touching the frame.
        let before = frame.clone();
        assert!(!complete_checksum(&mut frame, 14, 13));
        assert!(!complete_checksum(&mut frame, 100, 0));
        assert!(!complete_checksum(&mut frame, u16::MAX, u16::MAX));
        assert_eq!(frame, before);
    }

    #[test]
    fn feature_dependencies() {
        use features::*;
        assert_eq!(missing_dependency(CSUM | HOST_TSO4 | MRG_RXBUF), None);
        assert_eq!(
            missing_dependency(HOST_TSO4),
            Some("HOST_TSO4 requires CSUM")
        );
        assert_eq!(
            missing_dependency(GUEST_UFO | CSUM),
            Some("GUEST_UFO requires GUEST_CSUM")
        );
        assert_eq!(missing_dependency(SUPPORTED), None);
    }
}
