//! System calls to a kernel in another process: the messages between a
//! process of a tree and the kernel server of the hijack's process-tree
//! mode (docs/process-tree.md). Fixed-size records of eight 64-bit words,
//! one per packet of a `SOCK_SEQPACKET` UNIX socket, optionally followed
//! by descriptor pairs. Both ends are the same library, so the layout is
//! the host's; the server still decodes every packet strictly
//! (`Request::decode`) and cuts off a client that sends anything else.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A record's size in bytes.
pub const RECORD: usize = 64;

/// Descriptor pairs (host number, kernel number) carried after a record,
/// at most this many (an exec's kept kernel descriptors).
pub const MAX_PAIRS: usize = 4096;

/// The largest packet: a record and its pairs.
pub const MAX_PACKET: usize = RECORD + MAX_PAIRS * 8;

/// How a connection starts: which process and thread it speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hello {
    /// The first connection of a program image: a new process of the tree,
    /// or (its pid known to the server) the new image of one that exec'd.
    Image,
    /// The first connection of a forked child, with the fork's token.
    Forked(u64),
    /// One more thread of a process the server knows.
    Thread,
}

/// What a client asks on its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A connection's first request, with the host thread id of the
    /// thread it is for (its kernel task takes that id where it can).
    Hello(Hello, i32),
    /// System call `nr` with six arguments, as the calling thread.
    Call {
        nr: i64,
        args: [i64; 6],
    },
    /// Fork this process's kernel process ahead of the host fork; the
    /// answer is a token the child presents.
    Fork,
    /// The host fork made `pid` from the fork of `token` (pid -1: it
    /// failed and the kernel process goes).
    ForkDone {
        token: u64,
        pid: i32,
    },
    /// An exec is about to happen: the pairs that follow are the kernel
    /// descriptors its new image keeps.
    ExecPrepare,
    /// Bump the eventfd that comes with this packet (SCM_RIGHTS) whenever
    /// kernel descriptor `kfd` is woken with one of `events`.
    NotifierAdd {
        kfd: i32,
        events: u32,
    },
    NotifierDel {
        id: i32,
    },
    /// Keep a reference to kernel descriptor `kfd`'s file for another
    /// process of the tree (it travels over a host UNIX socket); the
    /// answer is the ticket that claims it.
    Stash {
        kfd: i32,
    },
    /// A new descriptor, in the caller's table, for the file of `ticket`.
    Claim {
        ticket: u64,
    },
    /// Is host process `pid` a process of this tree (0/1)?
    InTree {
        pid: i32,
    },
    /// The server's counts: processes, their threads' tasks, files kept
    /// in passing, the kernel's tasks, its free memory in KiB.
    Stats,
}

const HELLO: u64 = 1;
const CALL: u64 = 2;
const FORK: u64 = 3;
const FORK_DONE: u64 = 4;
const EXEC_PREPARE: u64 = 5;
const NOTIFIER_ADD: u64 = 6;
const NOTIFIER_DEL: u64 = 7;
const STASH: u64 = 8;
const CLAIM: u64 = 9;
const IN_TREE: u64 = 10;
const STATS: u64 = 11;

const HELLO_IMAGE: u64 = 0;
const HELLO_FORKED: u64 = 1;
const HELLO_THREAD: u64 = 2;

fn words(buf: &[u8]) -> Option<[u64; 8]> {
    let rec = buf.get(..RECORD)?;
    let mut w = [0u64; 8];
    for (i, c) in rec.chunks_exact(8).enumerate() {
        w[i] = u64::from_ne_bytes(c.try_into().ok()?);
    }
    Some(w)
}

fn put(w: [u64; 8]) -> [u8; RECORD] {
    let mut out = [0u8; RECORD];
    for (i, v) in w.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
    }
    out
}

/// A request's sequence number rides in the upper half of its first word,
/// and comes back in its reply's: a thread that left a call while waiting
/// for its answer (a `siglongjmp` out of a signal handler) recognises that
/// late answer and drops it instead of taking it for the next call's.
const SEQ_SHIFT: u32 = 32;

/// The sequence number of the request in `buf` (0 if it has none).
pub fn seq_of(buf: &[u8]) -> u32 {
    words(buf).map_or(0, |w| (w[0] >> SEQ_SHIFT) as u32)
}

impl Request {
    /// The record for this request, with sequence number `seq`.
    pub fn encode_seq(&self, seq: u32) -> [u8; RECORD] {
        let mut rec = self.encode();
        let w0 = u64::from_ne_bytes(rec[..8].try_into().unwrap_or([0; 8]))
            | (u64::from(seq) << SEQ_SHIFT);
        rec[..8].copy_from_slice(&w0.to_ne_bytes());
        rec
    }

    /// The record for this request.
    pub fn encode(&self) -> [u8; RECORD] {
        let w = match *self {
            Request::Hello(h, tid) => {
                let (kind, token) = match h {
                    Hello::Image => (HELLO_IMAGE, 0),
                    Hello::Forked(t) => (HELLO_FORKED, t),
                    Hello::Thread => (HELLO_THREAD, 0),
                };
                [HELLO, kind, token, tid as i64 as u64, 0, 0, 0, 0]
            }
            Request::Call { nr, args } => {
                let a = args.map(|v| v as u64);
                [CALL, nr as u64, a[0], a[1], a[2], a[3], a[4], a[5]]
            }
            Request::Fork => [FORK, 0, 0, 0, 0, 0, 0, 0],
            Request::ForkDone { token, pid } => {
                [FORK_DONE, token, pid as i64 as u64, 0, 0, 0, 0, 0]
            }
            Request::ExecPrepare => [EXEC_PREPARE, 0, 0, 0, 0, 0, 0, 0],
            Request::NotifierAdd { kfd, events } => [
                NOTIFIER_ADD,
                kfd as i64 as u64,
                u64::from(events),
                0,
                0,
                0,
                0,
                0,
            ],
            Request::NotifierDel { id } => [NOTIFIER_DEL, id as i64 as u64, 0, 0, 0, 0, 0, 0],
            Request::Stash { kfd } => [STASH, kfd as i64 as u64, 0, 0, 0, 0, 0, 0],
            Request::Claim { ticket } => [CLAIM, ticket, 0, 0, 0, 0, 0, 0],
            Request::InTree { pid } => [IN_TREE, pid as i64 as u64, 0, 0, 0, 0, 0, 0],
            Request::Stats => [STATS, 0, 0, 0, 0, 0, 0, 0],
        };
        put(w)
    }

    /// The request in a packet's first record; None for anything else.
    pub fn decode(buf: &[u8]) -> Option<Request> {
        let w = words(buf)?;
        let i32_of = |v: u64| i32::try_from(v as i64).ok();
        Some(match w[0] & ((1u64 << SEQ_SHIFT) - 1) {
            HELLO => Request::Hello(
                match w[1] {
                    HELLO_IMAGE => Hello::Image,
                    HELLO_FORKED => Hello::Forked(w[2]),
                    HELLO_THREAD => Hello::Thread,
                    _ => return None,
                },
                i32_of(w[3]).filter(|&t| t >= 0)?,
            ),
            CALL => Request::Call {
                nr: w[1] as i64,
                args: [w[2], w[3], w[4], w[5], w[6], w[7]].map(|v| v as i64),
            },
            FORK => Request::Fork,
            FORK_DONE => Request::ForkDone {
                token: w[1],
                pid: i32_of(w[2])?,
            },
            EXEC_PREPARE => Request::ExecPrepare,
            NOTIFIER_ADD => Request::NotifierAdd {
                kfd: i32_of(w[1])?,
                events: u32::try_from(w[2]).ok()?,
            },
            NOTIFIER_DEL => Request::NotifierDel { id: i32_of(w[1])? },
            STASH => Request::Stash { kfd: i32_of(w[1])? },
            CLAIM => Request::Claim { ticket: w[1] },
            IN_TREE => Request::InTree { pid: i32_of(w[1])? },
            STATS => Request::Stats,
            _ => return None,
        })
    }
}

/// The server's answer: a result (a value, or a negative errno as the
/// kernel returns it) and, for some requests, a second value (a hello's
/// kernel thread id, the server's pid) and descriptor pairs after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub ret: i64,
    pub value: i64,
    pub server_pid: i32,
    pub pairs: u32,
    /// The sequence number of the request this answers.
    pub seq: u32,
    /// More values (a `Stats` answer).
    pub more: [i64; 4],
}

impl Reply {
    pub fn encode(&self) -> [u8; RECORD] {
        put([
            self.ret as u64,
            self.value as u64,
            self.server_pid as i64 as u64,
            u64::from(self.pairs) | (u64::from(self.seq) << SEQ_SHIFT),
            self.more[0] as u64,
            self.more[1] as u64,
            self.more[2] as u64,
            self.more[3] as u64,
        ])
    }

    pub fn decode(buf: &[u8]) -> Option<Reply> {
        let w = words(buf)?;
        Some(Reply {
            ret: w[0] as i64,
            value: w[1] as i64,
            server_pid: i32::try_from(w[2] as i64).ok()?,
            pairs: w[3] as u32,
            seq: (w[3] >> SEQ_SHIFT) as u32,
            more: [w[4], w[5], w[6], w[7]].map(|v| v as i64),
        })
    }
}

/// A channel's shared page: a memfd the server makes for each connection
/// and passes in its hello answer, mapped by both ends. A request whose
/// record is all there is to it (not a hello, not one that carries pairs
/// or a descriptor) and its answer travel here instead of as packets, so
/// that an end polling for the other's record finds it with a load, not a
/// system call. The socket stays for the rest: a sleeping end is woken by
/// a one-byte packet (a doorbell) when it says it sleeps (`*_waits`), and
/// a closed socket still says that the other end is gone.
///
/// Records are published with their sequence number last (release) and
/// read back between two reads of it (a torn copy is retried): the client
/// owns `req_seq` and `request`, the server `rep_seq` and `reply`. The
/// server trusts nothing here: a record taken from the page goes through
/// [`Request::decode`] as a packet does.
#[repr(C, align(64))]
pub struct SharedPage {
    /// The sequence number of the latest request in `request`.
    pub req_seq: AtomicU32,
    /// 1 while the server's thread sleeps on the socket (or is about to).
    pub server_waits: AtomicU32,
    /// The sequence number of the answer in `reply`.
    pub rep_seq: AtomicU32,
    /// 1 while the client's thread sleeps on the socket (or is about to).
    pub client_waits: AtomicU32,
    /// The sequence number of the request whose buffer the client staged
    /// in the stage (0: none), and how many bytes of it (client-owned;
    /// the server only takes them as that client's data, [`Self::staged`]).
    pub stage_seq: AtomicU32,
    pub stage_len: AtomicU32,
    /// The latest request the client staged a buffer for: the stage is
    /// its own again once the server answered it or a later request
    /// (client-owned, never read by the server).
    pub stage_last: AtomicU32,
    _pad: [u32; 9],
    request: [AtomicU64; 8],
    reply: [AtomicU64; 8],
}

/// Where a channel's stage starts in its memfd (after the [`SharedPage`]).
pub const STAGE_OFFSET: usize = 4096;

/// The stage: room for the buffer of one `write`, `send` or `pwrite` of
/// up to this size, which the client copies there before it posts the
/// call, so that the server's kernel reads it with plain copies instead
/// of a `process_vm_readv` (docs/process-tree.md). Larger buffers are
/// read ahead by the server as before: staging them moved the cost to
/// the client without a gain that showed.
pub const STAGE_SIZE: usize = 16 << 10;

/// The size of the memfd that holds a [`SharedPage`] and its stage.
pub const SHARED_SIZE: usize = STAGE_OFFSET + STAGE_SIZE;

const _: () = assert!(std::mem::size_of::<SharedPage>() <= STAGE_OFFSET);

/// The length of a doorbell packet (a record is longer).
pub const DOORBELL: usize = 1;

/// How many times a torn record is read again before the reader gives up.
const TORN_TRIES: usize = 8;

fn store(words: &[AtomicU64; 8], rec: &[u8; RECORD]) {
    for (w, c) in words.iter().zip(rec.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

fn load(words: &[AtomicU64; 8]) -> [u8; RECORD] {
    let mut rec = [0u8; RECORD];
    for (w, c) in words.iter().zip(rec.chunks_exact_mut(8)) {
        c.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
    }
    rec
}

/// Reads `words` published under `seq`; None if `seq` says `last` (nothing
/// new) or the record kept changing under the reader.
fn take(
    seq: &AtomicU32,
    words: &[AtomicU64; 8],
    last: u32,
) -> Option<Result<(u32, [u8; RECORD]), ()>> {
    for _ in 0..TORN_TRIES {
        let s = seq.load(Ordering::Acquire);
        if s == last {
            return None;
        }
        let rec = load(words);
        std::sync::atomic::fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) == s {
            return Some(Ok((s, rec)));
        }
    }
    Some(Err(()))
}

impl SharedPage {
    /// A page with no request and no answer in it.
    pub const fn new() -> SharedPage {
        SharedPage {
            req_seq: AtomicU32::new(0),
            server_waits: AtomicU32::new(0),
            rep_seq: AtomicU32::new(0),
            client_waits: AtomicU32::new(0),
            stage_seq: AtomicU32::new(0),
            stage_len: AtomicU32::new(0),
            stage_last: AtomicU32::new(0),
            _pad: [0; 9],
            request: [const { AtomicU64::new(0) }; 8],
            reply: [const { AtomicU64::new(0) }; 8],
        }
    }

    /// Client: publishes request `rec` (its sequence number in it).
    pub fn post_request(&self, rec: &[u8; RECORD]) {
        store(&self.request, rec);
        self.req_seq.store(seq_of(rec), Ordering::Release);
    }

    /// Server: the request published since the one numbered `last`, as a
    /// request and its sequence number. `Some(None)`: something is there
    /// but it is no request (garbage, or a record that kept changing):
    /// the client is cut off.
    #[allow(clippy::option_option)]
    pub fn take_request(&self, last: u32) -> Option<Option<(u32, Request)>> {
        match take(&self.req_seq, &self.request, last)? {
            Ok((s, rec)) => Some(
                Request::decode(&rec)
                    .filter(|r| r.fits_page() && seq_of(&rec) == s)
                    .map(|r| (s, r)),
            ),
            Err(()) => Some(None),
        }
    }

    /// Server, after taking request `seq`: how many bytes of its buffer
    /// the client staged (at most [`STAGE_SIZE`]; 0 if none). Whatever the
    /// client writes in the stage is only ever that request's data.
    pub fn staged(&self, seq: u32) -> usize {
        if self.stage_seq.load(Ordering::Acquire) != seq {
            return 0;
        }
        (self.stage_len.load(Ordering::Relaxed) as usize).min(STAGE_SIZE)
    }

    /// Client: whether the stage may be written for a new request: the
    /// server is done with the buffer staged last (it answered that
    /// request or a later one; it serves a channel's requests in order).
    /// A thread that left a staged call (a jump out of a signal handler)
    /// must not overwrite what that call may still be reading.
    pub fn stage_free(&self) -> bool {
        let last = self.stage_last.load(Ordering::Relaxed);
        last == 0 || (self.rep_seq.load(Ordering::Acquire).wrapping_sub(last) as i32) >= 0
    }

    /// Client: `len` bytes of request `seq`'s buffer are in the stage (0:
    /// none); published with the request that follows.
    pub fn set_staged(&self, seq: u32, len: usize) {
        self.stage_len.store(len as u32, Ordering::Relaxed);
        self.stage_seq
            .store(if len > 0 { seq } else { 0 }, Ordering::Relaxed);
        if len > 0 {
            self.stage_last.store(seq, Ordering::Relaxed);
        }
    }

    /// Server: publishes answer `rep` (its `seq` set).
    pub fn post_reply(&self, rep: &Reply) {
        store(&self.reply, &rep.encode());
        self.rep_seq.store(rep.seq, Ordering::Release);
    }

    /// Client: the answer to request `seq`, if it is there.
    pub fn take_reply(&self, seq: u32) -> Option<Reply> {
        for _ in 0..TORN_TRIES {
            if self.rep_seq.load(Ordering::Acquire) != seq {
                return None;
            }
            let rec = load(&self.reply);
            std::sync::atomic::fence(Ordering::Acquire);
            if self.rep_seq.load(Ordering::Relaxed) == seq {
                return Reply::decode(&rec).filter(|r| r.seq == seq);
            }
        }
        None
    }
}

impl Default for SharedPage {
    fn default() -> Self {
        Self::new()
    }
}

impl Request {
    /// True if this request may travel in a [`SharedPage`]: its record is
    /// all of it (a hello, an exec's pairs and a notifier's eventfd need
    /// the socket).
    pub fn fits_page(&self) -> bool {
        !matches!(
            self,
            Request::Hello(..) | Request::ExecPrepare | Request::NotifierAdd { .. }
        )
    }
}

/// Kernel descriptors kept across an exec: (host number, kernel number).
pub type Pairs = Vec<(i32, i32)>;

/// Descriptor pairs as bytes (after a record).
pub fn encode_pairs(pairs: &[(i32, i32)], out: &mut Vec<u8>) {
    for &(h, k) in pairs.iter().take(MAX_PAIRS) {
        out.extend_from_slice(&h.to_ne_bytes());
        out.extend_from_slice(&k.to_ne_bytes());
    }
}

/// The pairs after a packet's record; None if the bytes are not whole
/// pairs of non-negative numbers.
pub fn decode_pairs(rest: &[u8]) -> Option<Pairs> {
    if !rest.len().is_multiple_of(8) || rest.len() / 8 > MAX_PAIRS {
        return None;
    }
    rest.chunks_exact(8)
        .map(|c| {
            let h = i32::from_ne_bytes(c[..4].try_into().ok()?);
            let k = i32::from_ne_bytes(c[4..].try_into().ok()?);
            (h >= 0 && k >= 0).then_some((h, k))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let all = [
            Request::Hello(Hello::Image, 0),
            Request::Hello(Hello::Forked(77), 12),
            Request::Hello(Hello::Thread, i32::MAX),
            Request::Call {
                nr: 41,
                args: [2, 1, 0, -1, i64::MIN, i64::MAX],
            },
            Request::Fork,
            Request::ForkDone { token: 3, pid: -1 },
            Request::ExecPrepare,
            Request::NotifierAdd {
                kfd: 5,
                events: 0x2019,
            },
            Request::NotifierDel { id: 9 },
            Request::Stash { kfd: 4 },
            Request::Claim { ticket: u64::MAX },
            Request::InTree { pid: 77 },
            Request::Stats,
        ];
        for r in all {
            assert_eq!(Request::decode(&r.encode()), Some(r));
            let rec = r.encode_seq(u32::MAX - 3);
            assert_eq!(Request::decode(&rec), Some(r));
            assert_eq!(seq_of(&rec), u32::MAX - 3);
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(Request::decode(&[0u8; 10]), None);
        let mut bad = [0u8; RECORD];
        bad[0] = 99;
        assert_eq!(Request::decode(&bad), None);
        let mut hello = Request::Hello(Hello::Image, 5).encode();
        hello[8] = 7;
        assert_eq!(Request::decode(&hello), None);
        let mut hello = Request::Hello(Hello::Thread, 5).encode();
        hello[24..32].copy_from_slice(&(-1i64).to_ne_bytes());
        assert_eq!(Request::decode(&hello), None);
        assert_eq!(decode_pairs(&[1, 2, 3]), None);
        assert_eq!(decode_pairs(&(-1i32).to_ne_bytes().repeat(2)), None);
    }

    #[test]
    fn the_shared_page_carries_requests_and_answers() {
        let page = SharedPage::new();
        assert_eq!(page.take_request(0), None);
        let call = Request::Call {
            nr: 25,
            args: [3, 1, 0, 0, 0, 0],
        };
        page.post_request(&call.encode_seq(7));
        assert_eq!(page.take_request(0), Some(Some((7, call))));
        assert_eq!(page.take_request(7), None);
        page.post_request(&Request::ExecPrepare.encode_seq(8));
        assert_eq!(page.take_request(7), Some(None));
        assert_eq!(page.take_reply(7), None);
        let rep = Reply {
            ret: -4,
            value: 0,
            server_pid: 1,
            pairs: 0,
            seq: 7,
            more: [0; 4],
        };
        page.post_reply(&rep);
        assert_eq!(page.take_reply(7), Some(rep));
        assert_eq!(page.take_reply(8), None);
    }

    #[test]
    fn a_staged_buffer_belongs_to_its_request_and_frees_the_stage_once_answered() {
        let page = SharedPage::new();
        assert!(page.stage_free());
        assert_eq!(page.staged(5), 0);
        page.set_staged(5, 1000);
        assert_eq!(page.staged(5), 1000);
        // Another request's number: nothing staged for it.
        assert_eq!(page.staged(6), 0);
        // Until the server answered 5 (or later), the stage is not free.
        assert!(!page.stage_free());
        let mut rep = Reply {
            ret: 0,
            value: 0,
            server_pid: 1,
            pairs: 0,
            seq: 4,
            more: [0; 4],
        };
        page.post_reply(&rep);
        assert!(!page.stage_free());
        rep.seq = 7;
        page.post_reply(&rep);
        assert!(page.stage_free());
        // A length the client could lie about is clamped to the stage.
        page.set_staged(8, 0);
        assert_eq!(page.staged(8), 0);
        page.stage_seq.store(9, Ordering::Relaxed);
        page.stage_len.store(u32::MAX, Ordering::Relaxed);
        assert_eq!(page.staged(9), STAGE_SIZE);
    }

    #[test]
    fn replies_and_pairs_round_trip() {
        let r = Reply {
            ret: -9,
            value: 12,
            server_pid: 4242,
            pairs: 2,
            seq: 0xdead_beef,
            more: [1, -2, 3, i64::MIN],
        };
        assert_eq!(Reply::decode(&r.encode()), Some(r));
        let mut out = Vec::new();
        encode_pairs(&[(3, 0), (70, 5)], &mut out);
        assert_eq!(decode_pairs(&out), Some(vec![(3, 0), (70, 5)]));
    }
}
