//! Calls on any descriptor, kernel or host, whatever it is (a socket, a
//! file on a disk): reading and writing (`rw`), managing descriptors
//! (`control`, which takes a closed one out of the epoll sets in `epoll`),
//! copying between two (`copy`), waiting for readiness (`poll`,
//! `epoll`), and `FILE` streams on kernel descriptors (`stream`).

pub mod epoll;

pub mod control;
pub mod copy;
pub mod poll;
pub mod rw;
pub mod stream;
