//! The pieces: edit distance, subnets, MACs, offload bits.

use super::*;

#[test]
fn suggestions() {
    assert_eq!(distance("masklne", "masklen"), 1);
    assert_eq!(distance("", "abc"), 3);
    assert_eq!(distance("kitten", "sitting"), 3);
    assert_eq!(
        nearest("gatewya", &["gateway", "gateway6"], &[]),
        Some("gateway")
    );
    assert_eq!(nearest("GATEWAY", &["gateway"], &[]), Some("gateway"));
    assert_eq!(nearest("xyz", &["gateway"], &[]), None);
    assert_eq!(
        nearest("dns", &["nameserver"], &[("dns", "nameserver")]),
        Some("nameserver")
    );
}

#[test]
fn nets_and_macs() {
    let n = Ipv4Net::new(Ipv4Addr::new(10, 1, 2, 3), 0).unwrap();
    assert!(n.contains(Ipv4Addr::new(192, 168, 0, 1)));
    assert_eq!(n.netmask(), Ipv4Addr::UNSPECIFIED);
    let n = Ipv4Net::new(Ipv4Addr::new(10, 1, 2, 3), 32).unwrap();
    assert_eq!(n.network(), Ipv4Addr::new(10, 1, 2, 3));
    assert!(Ipv4Net::new(Ipv4Addr::LOCALHOST, 33).is_none());
    let n = Ipv6Net::new("fc03::2".parse().unwrap(), 128).unwrap();
    assert!(n.contains("fc03::2".parse().unwrap()) && !n.contains("fc03::3".parse().unwrap()));
    assert!(Ipv6Net::new(Ipv6Addr::LOCALHOST, 129).is_none());
    assert_eq!(
        MacAddr([0xaa, 0, 1, 2, 3, 0xff]).to_string(),
        "aa:00:01:02:03:ff"
    );
    assert!(MacAddr::parse("aa:bb:cc:dd:ee").is_err());
    assert!(MacAddr::parse("aa-bb-cc-dd-ee-ff").is_err());
    assert!(MacAddr::parse("").is_err());
    assert_eq!(Offload::new(0x883).map(Offload::bits), Ok(0x883));
    assert!(Offload::new(0x8002).is_ok());
    assert!(Offload::new(1 << 11).is_err()); // HOST_TSO4 without CSUM
}
