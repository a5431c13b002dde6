//! Name resolution through the kernel's network, for the hijack library:
//! glibc's resolver talks to the host's network through internal calls no
//! preload library can see, so the hijack answers names itself. `wire`
//! builds queries and reads (untrusted) replies, `files` reads the host's
//! `/etc/hosts` and `/etc/services`, `client` asks nameservers over kernel
//! UDP and TCP sockets.

pub mod client;
pub mod files;
pub mod wire;

pub use client::{Client, LookupError};
