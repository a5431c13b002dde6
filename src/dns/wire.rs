//! DNS messages (RFC 1035): building a query, reading a reply. A reply is
//! hostile input: every read is bounds-checked, a compression pointer must
//! point strictly backwards (so pointer chains end), names are limited to
//! 255 bytes and printable labels, and a reply is only accepted for the
//! query it answers (id, QR bit, opcode and the question itself).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Response codes a reply may carry.
pub const RCODE_OK: u8 = 0;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;

/// The longest name on the wire (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// CNAME links followed before giving up.
const MAX_CHAIN: usize = 8;

/// What is wrong with a name or a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The name cannot be sent (empty label, label over 63 bytes, name
    /// over 255 bytes).
    BadName,
    /// The message ends before a field it announces.
    Truncated,
    /// A compression pointer that does not point backwards.
    BadPointer,
    /// A name with bytes we do not hand to programs, or too long.
    BadLabel,
    /// Not the reply to our query (id, flags or question differ).
    NotOurs,
    /// A record whose data length does not fit its type.
    BadRecord,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::BadName => {
                "name cannot be sent (label empty or over 63 bytes, or name over 255)"
            }
            WireError::Truncated => "reply ends inside a field",
            WireError::BadPointer => {
                "reply has a compression pointer that does not point backwards"
            }
            WireError::BadLabel => "reply has a name with unprintable bytes or over 255 bytes",
            WireError::NotOurs => "reply does not answer our query",
            WireError::BadRecord => "reply has a record whose length does not fit its type",
        })
    }
}

impl std::error::Error for WireError {}

/// The name's labels, without a trailing root dot.
fn labels(name: &str) -> Result<Vec<&str>, WireError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAME - 2 {
        return Err(WireError::BadName);
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63) {
        return Err(WireError::BadName);
    }
    Ok(labels)
}

/// A recursive query for `name` of type `qtype`, with id `id`.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    let labels = labels(name)?;
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    m.extend_from_slice(&[0; 6]); // AN, NS, AR
    for l in labels {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// The name for a PTR query of `addr` (in-addr.arpa / ip6.arpa).
pub fn reverse_name(addr: std::net::IpAddr) -> String {
    match addr {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        std::net::IpAddr::V6(a) => {
            let mut s = String::with_capacity(72);
            for b in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// A record's data, for the types we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Ptr(String),
    Other,
}

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub data: RData,
}

/// A reply that answers our query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// TC: the answer did not fit; ask again over TCP.
    pub truncated: bool,
    pub rcode: u8,
    pub answers: Vec<Record>,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn u8_at(&self, i: usize) -> Result<u8, WireError> {
        self.buf.get(i).copied().ok_or(WireError::Truncated)
    }

    fn u16_at(&self, i: usize) -> Result<u16, WireError> {
        Ok(u16::from(self.u8_at(i)?) << 8 | u16::from(self.u8_at(i + 1)?))
    }

    fn bytes(&self, i: usize, n: usize) -> Result<&[u8], WireError> {
        self.buf
            .get(i..i.checked_add(n).ok_or(WireError::Truncated)?)
            .ok_or(WireError::Truncated)
    }

    /// The name at `pos` (dotted, lower-case kept as sent) and the offset
    /// after it in the original position's sequence.
    fn name(&self, mut pos: usize) -> Result<(String, usize), WireError> {
        let mut out = String::new();
        let mut wire_len = 1usize;
        let mut end = None;
        // Every pointer must go strictly below the lowest offset read so
        // far: the walk can only move backwards, so it ends.
        let mut floor = pos;
        loop {
            let len = self.u8_at(pos)?;
            match len & 0xc0 {
                0x00 => {
                    if len == 0 {
                        return Ok((out, end.unwrap_or(pos + 1)));
                    }
                    let label = self.bytes(pos + 1, usize::from(len))?;
                    wire_len += 1 + label.len();
                    if wire_len > MAX_NAME {
                        return Err(WireError::BadLabel);
                    }
                    // Printable ASCII other than '.', so a name we hand on
                    // reads as it was sent and cannot be mistaken for another.
                    if label
                        .iter()
                        .any(|&b| !(0x21..=0x7e).contains(&b) || b == b'.')
                    {
                        return Err(WireError::BadLabel);
                    }
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.extend(label.iter().map(|&b| b as char));
                    pos += 1 + label.len();
                }
                0xc0 => {
                    let target = usize::from(self.u16_at(pos)? & 0x3fff);
                    if target >= floor {
                        return Err(WireError::BadPointer);
                    }
                    end.get_or_insert(pos + 2);
                    floor = target;
                    pos = target;
                }
                _ => return Err(WireError::BadLabel), // 0x40/0x80: unused label types
            }
        }
    }
}

/// Names compare without regard to ASCII case or a trailing dot.
pub fn same_name(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

/// Reads `buf` as the reply to query `id` for `name` of type `qtype`.
/// Answer records of classes other than IN are skipped.
pub fn parse_reply(buf: &[u8], id: u16, name: &str, qtype: u16) -> Result<Reply, WireError> {
    let r = Reader { buf };
    if buf.len() < 12 {
        return Err(WireError::Truncated);
    }
    let flags = r.u16_at(2)?;
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    if r.u16_at(0)? != id || !qr || opcode != 0 || r.u16_at(4)? != 1 {
        return Err(WireError::NotOurs);
    }
    let truncated = flags & 0x0200 != 0;
    let rcode = (flags & 0xf) as u8;
    let ancount = usize::from(r.u16_at(6)?);
    let (qname, mut pos) = r.name(12)?;
    if !same_name(&qname, name) || r.u16_at(pos)? != qtype || r.u16_at(pos + 2)? != CLASS_IN {
        return Err(WireError::NotOurs);
    }
    pos += 4;
    let mut answers = Vec::new();
    if truncated {
        // The rest may be cut anywhere: the caller asks again over TCP.
        return Ok(Reply {
            truncated,
            rcode,
            answers,
        });
    }
    for _ in 0..ancount {
        let (owner, p) = r.name(pos)?;
        let rtype = r.u16_at(p)?;
        let class = r.u16_at(p + 2)?;
        let rdlen = usize::from(r.u16_at(p + 8)?);
        let start = p + 10;
        let rdata = r.bytes(start, rdlen)?;
        pos = start + rdlen;
        if class != CLASS_IN {
            continue;
        }
        let data = match rtype {
            TYPE_A => {
                let o: [u8; 4] = rdata.try_into().map_err(|_| WireError::BadRecord)?;
                RData::A(Ipv4Addr::from(o))
            }
            TYPE_AAAA => {
                let o: [u8; 16] = rdata.try_into().map_err(|_| WireError::BadRecord)?;
                RData::Aaaa(Ipv6Addr::from(o))
            }
            TYPE_CNAME | TYPE_PTR => {
                let (target, after) = r.name(start)?;
                if after != pos {
                    return Err(WireError::BadRecord);
                }
                if rtype == TYPE_CNAME {
                    RData::Cname(target)
                } else {
                    RData::Ptr(target)
                }
            }
            _ => RData::Other,
        };
        answers.push(Record { name: owner, data });
    }
    Ok(Reply {
        truncated,
        rcode,
        answers,
    })
}

/// The addresses a reply gives for `name`, following its CNAME chain, and
/// the canonical name (the chain's end). Records about other names are
/// ignored (a server may not vouch for names we did not ask about).
pub fn addresses(reply: &Reply, name: &str) -> (String, Vec<std::net::IpAddr>) {
    let mut current = name.strip_suffix('.').unwrap_or(name).to_string();
    for _ in 0..MAX_CHAIN {
        let next = reply.answers.iter().find_map(|rec| match &rec.data {
            RData::Cname(t) if same_name(&rec.name, &current) => Some(t.clone()),
            _ => None,
        });
        match next {
            Some(t) => current = t,
            None => break,
        }
    }
    let addrs = reply
        .answers
        .iter()
        .filter(|rec| same_name(&rec.name, &current))
        .filter_map(|rec| match rec.data {
            RData::A(a) => Some(a.into()),
            RData::Aaaa(a) => Some(a.into()),
            _ => None,
        })
        .collect();
    (current, addrs)
}

/// The name a PTR reply gives for `qname`.
pub fn ptr_name(reply: &Reply, qname: &str) -> Option<String> {
    reply.answers.iter().find_map(|rec| match &rec.data {
        RData::Ptr(t) if same_name(&rec.name, qname) => Some(t.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `q` (a query we built) with `answers` appended raw.
    fn reply_to(q: &[u8], flags: u16, ancount: u16, answers: &[u8]) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&ancount.to_be_bytes());
        m.extend_from_slice(answers);
        m
    }

    fn rr(owner: &[u8], rtype: u16, data: &[u8]) -> Vec<u8> {
        let mut v = owner.to_vec();
        v.extend_from_slice(&rtype.to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&300u32.to_be_bytes());
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    const AT_QNAME: [u8; 2] = [0xc0, 12];

    #[test]
    fn query_layout() {
        let q = query(0x1234, "ab.c.", TYPE_AAAA).unwrap();
        assert_eq!(
            q,
            [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'a', b'b', 1, b'c', 0, 0, 28, 0, 1]
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(query(1, "", TYPE_A), Err(WireError::BadName));
        assert_eq!(query(1, "a..b", TYPE_A), Err(WireError::BadName));
        assert_eq!(query(1, &"x".repeat(64), TYPE_A), Err(WireError::BadName));
        let long = ["abcdefghi"; 30].join(".");
        assert_eq!(query(1, &long, TYPE_A), Err(WireError::BadName));
    }

    #[test]
    fn a_and_cname_chain() {
        let q = query(7, "www.test", TYPE_A).unwrap();
        // www.test CNAME web.test ; web.test A 10.0.0.5 ; other.test A 1.2.3.4 (ignored)
        let mut ans = rr(&AT_QNAME, TYPE_CNAME, b"\x03web\xc0\x10");
        let web_at = (q.len() + ans.len() - 6) as u8; // where "web" label starts
        ans.extend(rr(&[0xc0, web_at], TYPE_A, &[10, 0, 0, 5]));
        ans.extend(rr(b"\x05other\xc0\x10", TYPE_A, &[1, 2, 3, 4]));
        let m = reply_to(&q, 0x8180, 3, &ans);
        let r = parse_reply(&m, 7, "WWW.test.", TYPE_A).unwrap();
        assert_eq!(r.rcode, RCODE_OK);
        let (canon, addrs) = addresses(&r, "www.test");
        assert_eq!(canon, "web.test");
        assert_eq!(addrs, vec![std::net::IpAddr::from([10, 0, 0, 5])]);
    }

    #[test]
    fn aaaa_record() {
        let q = query(9, "h.test", TYPE_AAAA).unwrap();
        let six: Ipv6Addr = "fd00::5".parse().unwrap();
        let m = reply_to(&q, 0x8180, 1, &rr(&AT_QNAME, TYPE_AAAA, &six.octets()));
        let r = parse_reply(&m, 9, "h.test", TYPE_AAAA).unwrap();
        assert_eq!(addresses(&r, "h.test").1, vec![std::net::IpAddr::V6(six)]);
    }

    #[test]
    fn replies_to_other_queries_are_refused() {
        let q = query(9, "h.test", TYPE_A).unwrap();
        let m = reply_to(&q, 0x8180, 0, &[]);
        assert_eq!(
            parse_reply(&m, 8, "h.test", TYPE_A),
            Err(WireError::NotOurs)
        );
        assert_eq!(
            parse_reply(&m, 9, "g.test", TYPE_A),
            Err(WireError::NotOurs)
        );
        assert_eq!(
            parse_reply(&m, 9, "h.test", TYPE_AAAA),
            Err(WireError::NotOurs)
        );
        // A query (QR clear) is not a reply.
        assert_eq!(
            parse_reply(&q, 9, "h.test", TYPE_A),
            Err(WireError::NotOurs)
        );
        assert!(parse_reply(&m, 9, "h.test", TYPE_A).is_ok());
    }

    #[test]
    fn compression_loops_and_forward_pointers_are_refused() {
        let q = query(1, "h.test", TYPE_A).unwrap();
        // Answer owner: a pointer to itself.
        let at = q.len() as u16 | 0xc000;
        let m = reply_to(&q, 0x8180, 1, &rr(&at.to_be_bytes(), TYPE_A, &[1, 2, 3, 4]));
        assert_eq!(
            parse_reply(&m, 1, "h.test", TYPE_A),
            Err(WireError::BadPointer)
        );
        // Two pointers to each other (the first points forward).
        let a = (q.len() as u16 + 2) | 0xc000;
        let b = q.len() as u16 | 0xc000;
        let mut ans = a.to_be_bytes().to_vec();
        ans.extend_from_slice(&b.to_be_bytes());
        let m = reply_to(&q, 0x8180, 1, &ans);
        assert_eq!(
            parse_reply(&m, 1, "h.test", TYPE_A),
            Err(WireError::BadPointer)
        );
        // A pointer in the question to itself.
        let mut m = q.clone();
        m[2] = 0x81;
        m[12] = 0xc0;
        m[13] = 12;
        assert_eq!(
            parse_reply(&m, 1, "h.test", TYPE_A),
            Err(WireError::BadPointer)
        );
    }

    #[test]
    fn truncation_anywhere_is_an_error_not_a_panic() {
        let q = query(3, "h.test", TYPE_A).unwrap();
        let m = reply_to(&q, 0x8180, 2, &rr(&AT_QNAME, TYPE_A, &[1, 2, 3, 4]));
        for cut in 0..m.len() {
            assert!(
                parse_reply(&m[..cut], 3, "h.test", TYPE_A).is_err(),
                "cut {cut}"
            );
        }
        // ANCOUNT says 2 but one record follows.
        assert_eq!(
            parse_reply(&m, 3, "h.test", TYPE_A),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn wrong_lengths_and_labels_are_refused() {
        let q = query(3, "h.test", TYPE_A).unwrap();
        let m = reply_to(&q, 0x8180, 1, &rr(&AT_QNAME, TYPE_A, &[1, 2, 3]));
        assert_eq!(
            parse_reply(&m, 3, "h.test", TYPE_A),
            Err(WireError::BadRecord)
        );
        let m = reply_to(&q, 0x8180, 1, &rr(&AT_QNAME, TYPE_CNAME, b"\x02a\nb\x00"));
        assert_eq!(
            parse_reply(&m, 3, "h.test", TYPE_A),
            Err(WireError::BadLabel)
        );
        let m = reply_to(&q, 0x8180, 1, &rr(&AT_QNAME, TYPE_CNAME, b"\x02a.\x00"));
        assert_eq!(
            parse_reply(&m, 3, "h.test", TYPE_A),
            Err(WireError::BadLabel)
        );
    }

    #[test]
    fn truncated_flag_and_rcode() {
        let q = query(4, "h.test", TYPE_A).unwrap();
        let m = reply_to(&q, 0x8380, 5, &[1, 2]);
        let r = parse_reply(&m, 4, "h.test", TYPE_A).unwrap();
        assert!(r.truncated);
        let m = reply_to(&q, 0x8183, 0, &[]);
        assert_eq!(
            parse_reply(&m, 4, "h.test", TYPE_A).unwrap().rcode,
            RCODE_NXDOMAIN
        );
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.1.2.3".parse().unwrap()),
            "3.2.1.10.in-addr.arpa"
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0"), "{v6}");
        assert!(v6.ends_with("8.b.d.0.1.0.0.2.ip6.arpa"), "{v6}");
    }
}
