//! Sockets and the network's names.

pub mod ifaddrs;
pub mod ifreq;
pub mod packet;
pub mod resolve;
pub mod socket;
