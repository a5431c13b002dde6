//! Sockets and the network's names, answered by the kernel: the socket
//! calls (`socket`, with the packet rings it emulates in `packet`), the
//! kernel's interfaces (`ifreq`, `ifaddrs`) and name resolution through
//! the kernel (`resolve`, which asks `ifreq` whether an address family is
//! configured).

pub mod packet;
pub mod passing;
pub mod socket;

pub mod ifaddrs;
pub mod ifreq;
pub mod resolve;
