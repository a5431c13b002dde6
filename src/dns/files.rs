//! The host's `/etc/hosts` and `/etc/services`, read as text: pure
//! functions over the file contents, so they test without the files.

use std::net::IpAddr;

/// The fields of each line, comments (`#` to the end) removed.
fn lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines().filter_map(|l| {
        let l = l.split('#').next().unwrap_or("");
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 2).then_some(f)
    })
}

/// A hosts-file match: the addresses listed for `name` (its canonical
/// name or an alias), in file order, with the canonical name of the
/// first matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsEntry {
    pub canonical: String,
    pub addrs: Vec<IpAddr>,
}

/// Looks `name` up in hosts-file text. Lines whose address does not parse
/// are skipped, as glibc does.
pub fn hosts_lookup(text: &str, name: &str) -> Option<HostsEntry> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut found: Option<HostsEntry> = None;
    for f in lines(text) {
        let Ok(addr) = f[0].parse::<IpAddr>() else {
            continue;
        };
        if f[1..].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            let e = found.get_or_insert_with(|| HostsEntry {
                canonical: f[1].to_string(),
                addrs: Vec::new(),
            });
            if !e.addrs.contains(&addr) {
                e.addrs.push(addr);
            }
        }
    }
    found
}

/// The canonical name hosts-file text gives `addr`.
pub fn hosts_name(text: &str, addr: IpAddr) -> Option<String> {
    lines(text).find_map(|f| (f[0].parse::<IpAddr>().ok() == Some(addr)).then(|| f[1].to_string()))
}

/// The port of service `name` for protocol `proto` ("tcp" or "udp"),
/// matching its name or an alias.
pub fn service_port(text: &str, name: &str, proto: &str) -> Option<u16> {
    lines(text).find_map(|f| {
        let (port, p) = f[1].split_once('/')?;
        if p != proto || !(f[0] == name || f[2..].contains(&name)) {
            return None;
        }
        port.parse().ok()
    })
}

/// The service name of `port` for protocol `proto`.
pub fn service_name(text: &str, port: u16, proto: &str) -> Option<String> {
    lines(text).find_map(|f| {
        let (p, pr) = f[1].split_once('/')?;
        (pr == proto && p.parse::<u16>().ok() == Some(port)).then(|| f[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "127.0.0.1 localhost\n::1 localhost ip6-localhost # loop\n\
        10.0.0.1   Gate gate.lan\nbogus nobody\n# 10.9.9.9 gate\n10.0.0.2 gate\n";

    #[test]
    fn hosts() {
        let e = hosts_lookup(HOSTS, "localhost").unwrap();
        assert_eq!(e.canonical, "localhost");
        assert_eq!(
            e.addrs,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        let e = hosts_lookup(HOSTS, "GATE.lan.").unwrap();
        assert_eq!(e.canonical, "Gate");
        assert_eq!(e.addrs.len(), 1);
        assert_eq!(hosts_lookup(HOSTS, "gate").unwrap().addrs.len(), 2);
        assert_eq!(hosts_lookup(HOSTS, "nobody"), None);
        assert_eq!(hosts_lookup(HOSTS, "10.9.9.9"), None);
        assert_eq!(
            hosts_name(HOSTS, "::1".parse().unwrap()).as_deref(),
            Some("localhost")
        );
        assert_eq!(hosts_name(HOSTS, "10.0.0.3".parse().unwrap()), None);
    }

    const SERVICES: &str = "http 80/tcp www # web\nhttp 80/udp\ndomain 53/tcp\nbad x/tcp\n";

    #[test]
    fn services() {
        assert_eq!(service_port(SERVICES, "http", "tcp"), Some(80));
        assert_eq!(service_port(SERVICES, "www", "tcp"), Some(80));
        assert_eq!(service_port(SERVICES, "www", "udp"), None);
        assert_eq!(service_port(SERVICES, "bad", "tcp"), None);
        assert_eq!(service_name(SERVICES, 53, "tcp").as_deref(), Some("domain"));
        assert_eq!(service_name(SERVICES, 53, "udp"), None);
    }
}
