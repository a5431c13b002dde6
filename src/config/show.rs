//! The effective settings in words, one line each: what `--check-config`
//! prints and `LKL_HIJACK_DEBUG` logs. Defaults the config left out are
//! shown with what they are (an interface's offloads, duplicate address
//! detection), so what the program will get is on the page.

use super::types::{Config, Interface, LogTarget, Mode, Offload, SingleCpu, Syscalls, TABLE_MAIN};

impl Config {
    /// The effective settings, one line each, in the order the library
    /// applies them.
    pub fn settings(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.push(match &self.file {
            Some(f) => format!("config: {}", f.display()),
            None => "config: no file (LKL_HIJACK_* variables only)".into(),
        });
        if self.interfaces.is_empty() {
            out.push("interfaces: none (loopback only)".into());
        }
        for iface in &self.interfaces {
            interface_lines(iface, &mut out);
        }
        for (i, r) in self.routes.iter().enumerate() {
            let mut s = format!("routes[{i}]: {}", r.destination);
            if let Some(gw) = r.gateway {
                s += &format!(" via {gw}");
            }
            if let Some(dev) = &r.device {
                s += &format!(" dev {dev}");
            }
            if r.table != TABLE_MAIN {
                s += &format!(" table {}", r.table);
            }
            if let Some(m) = r.metric {
                s += &format!(" metric {m}");
            }
            out.push(s);
        }
        if let Some(gw) = self.gateway {
            out.push(format!("gateway: {gw}"));
        }
        if let Some(gw) = self.gateway6 {
            out.push(format!("gateway6: {gw}"));
        }
        if !self.nameservers.is_empty() {
            let ns: Vec<String> = self.nameservers.iter().map(ToString::to_string).collect();
            out.push(format!(
                "nameserver: {} (names resolved through the kernel)",
                ns.join(", ")
            ));
        }
        for (i, d) in self.disks.iter().enumerate() {
            let mut s = format!("disks[{i}]: {}", d.image.display());
            if d.partition != 0 {
                s += &format!(" partition {}", d.partition);
            }
            if let Some(fs) = &d.fstype {
                s += &format!(" {fs}");
            }
            match &d.mount {
                Some(m) => s += &format!(" mounted at {m}"),
                None => s += " (not mounted)",
            }
            s += if d.readonly {
                ", read-only"
            } else {
                ", read-write"
            };
            out.push(s);
        }
        if !self.mounts.is_empty() {
            let m: Vec<String> = self
                .mounts
                .iter()
                .map(|fs| format!("{fs} at /{fs}"))
                .collect();
            out.push(format!("mount: {}", m.join(", ")));
        }
        for s in &self.sysctls {
            out.push(format!("sysctl: {} = {}", s.key, s.value));
        }
        if !self.boot_cmdline.is_empty() {
            out.push(format!("boot_cmdline: {}", self.boot_cmdline));
        }
        if self.syscalls != Syscalls::Libc {
            out.push(format!(
                "syscalls: {} (every system call reaches the router)",
                self.syscalls.word()
            ));
        }
        if self.single_cpu != SingleCpu::Off {
            out.push(format!("singlecpu: {}", self.single_cpu.number()));
        }
        if self.debug.console() {
            out.push(format!(
                "debug: {:#x} (kernel console and these lines on stderr)",
                self.debug.0
            ));
        }
        out.push(format!(
            "mode: {}{}",
            self.mode.name(),
            match self.mode {
                Mode::Tree =>
                    " (one kernel, in a server, for the program and every process it starts)",
                Mode::SingleProcess => " (the kernel inside the program)",
            }
        ));
        if let Some(d) = self.delay_main {
            out.push(format!("delay_main: {d:?} before main"));
        }
        if !self.dump.is_empty() {
            out.push(format!("dump at exit: {}", self.dump.join(", ")));
        }
        if let LogTarget::File(p) = &self.log {
            out.push(format!("log: {}", p.display()));
        }
        for w in &self.warnings {
            out.push(format!("warning: {w}"));
        }
        out
    }
}

fn interface_lines(i: &Interface, out: &mut Vec<String>) {
    let n = &i.name;
    let kind = i.backend.kind();
    let param = i
        .backend
        .param()
        .unwrap_or_else(|| "(default network)".into());
    out.push(format!("{n}: {kind} {param}"));
    match i.mac {
        Some(mac) => out.push(format!("{n}: mac {mac}")),
        None => out.push(format!("{n}: mac chosen by the library")),
    }
    if let Some(mtu) = i.mtu {
        out.push(format!("{n}: mtu {mtu}"));
    }
    if let Some(net) = i.ipv4 {
        let mut s = format!("{n}: ip {net}");
        if let Some(gw) = i.ifgateway {
            s += &format!(", ifgateway {gw}");
        }
        out.push(s);
    }
    if let Some(net) = i.ipv6 {
        let mut s = format!("{n}: ipv6 {net}");
        if let Some(gw) = i.ifgateway6 {
            s += &format!(", ifgateway6 {gw}");
        }
        s += if i.dad {
            ", duplicate address detection before main (\"dad\": true)"
        } else {
            ", usable at once (no duplicate address detection; \"dad\": true asks for it)"
        };
        out.push(s);
    }
    for nb in &i.neighbors {
        out.push(format!("{n}: neighbour {} at {}", nb.ip, nb.mac));
    }
    for q in &i.qdiscs {
        out.push(format!("{n}: root qdisc {}", q.kind));
    }
    let origin = if i.offload == Offload::default_for(kind) {
        format!("the {kind} default")
    } else {
        "from \"offload\"".into()
    };
    let offload = if i.offload.is_empty() {
        format!("{n}: offload 0x0, none ({origin})")
    } else {
        format!(
            "{n}: offload {:#x} ({origin}): {}",
            i.offload.bits(),
            i.offload.names().join(" ")
        )
    };
    out.push(offload);
}
