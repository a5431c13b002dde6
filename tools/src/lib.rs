//! The programs users run on the kernel library, and the code they share:
//! [`cp`] is both `cptofs` and `cpfromfs` (the mode comes from the program's
//! name); [`fuse`] is the file system `lklfuse` serves.

pub mod cp;
pub mod fuse;
