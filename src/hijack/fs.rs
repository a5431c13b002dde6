//! Files on the config's disks.

pub mod dirs;
pub mod disks;
pub mod files;
pub mod paths;
pub mod stdio;
