//! What the kernel's TCP sockets still have to send, from `/proc/net/tcp`
//! and `/proc/net/tcp6`: a process that exits takes its kernel with it, so
//! before halting, the hijack waits for this to drain (data queued by a
//! program that wrote and exited, and the FINs of the sockets it closed),
//! as the host kernel would keep sending after the process is gone.

use crate::netcfg::{ensure_proc, read_file};

/// Sockets with something left to send, and how many bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsent {
    /// Sockets whose send queue is not empty or whose FIN is not acked.
    pub sockets: u32,
    /// Bytes in their send queues.
    pub bytes: u64,
}

impl Unsent {
    /// Nothing left to send.
    pub fn is_empty(&self) -> bool {
        self.sockets == 0
    }
}

// TCP states as /proc/net/tcp prints them (include/net/tcp_states.h).
const ESTABLISHED: u8 = 0x01;
const SYN_SENT: u8 = 0x02;
const FIN_WAIT1: u8 = 0x04;
const CLOSE_WAIT: u8 = 0x08;
const LAST_ACK: u8 = 0x09;
const CLOSING: u8 = 0x0b;

/// Adds up one `/proc/net/tcp`-format table.
pub fn parse(table: &str) -> Unsent {
    let mut u = Unsent::default();
    for line in table.lines().skip(1) {
        let mut cols = line.split_whitespace();
        let (Some(st), Some(queues)) = (cols.nth(3), cols.next()) else {
            continue;
        };
        let Ok(st) = u8::from_str_radix(st, 16) else {
            continue;
        };
        let tx = queues
            .split(':')
            .next()
            .and_then(|q| u64::from_str_radix(q, 16).ok())
            .unwrap_or(0);
        let pending = match st {
            // A FIN sent and not yet acknowledged.
            FIN_WAIT1 | CLOSING | LAST_ACK => true,
            ESTABLISHED | CLOSE_WAIT | SYN_SENT => tx > 0,
            _ => false,
        };
        if pending {
            u.sockets += 1;
            u.bytes += tx;
        }
    }
    u
}

/// What the kernel's TCP sockets (IPv4 and IPv6) still have to send.
/// Mounts procfs in the kernel if it is not there.
pub fn unsent() -> Unsent {
    if ensure_proc().is_err() {
        return Unsent::default();
    }
    let mut total = Unsent::default();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = read_file(path) {
            let u = parse(&text);
            total.sockets += u.sockets;
            total.bytes += u.bytes;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0271A8C0:C350 0171A8C0:1E61 01 00010000:00000000 01:00000014 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0271A8C0:C351 0171A8C0:1E61 04 00000000:00000000 01:00000014 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   3: 0271A8C0:C352 0171A8C0:1E61 05 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   4: 0271A8C0:C353 0171A8C0:1E61 01 00000000:00000010 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   5: 0271A8C0:C354 0171A8C0:1E61 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000 0 0 0 0 0
";

    #[test]
    fn counts_queued_bytes_and_unacked_fins_only() {
        // 1: established with 64 KiB queued; 2: FIN_WAIT1; 3: FIN_WAIT2
        // (done); 4: established, nothing to send; 5: TIME_WAIT; 0: listen.
        assert_eq!(
            parse(TABLE),
            Unsent {
                sockets: 2,
                bytes: 0x10000
            }
        );
        assert!(parse("header only\n").is_empty());
        assert!(parse("").is_empty());
        assert!(parse("h\n garbage line\n 0: a b zz q\n").is_empty());
    }
}
