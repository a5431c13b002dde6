//! Calls on any descriptor, kernel or host, whatever it is (a socket, a
//! file on a disk): reading and writing, managing descriptors, copying
//! between two, and waiting for readiness.

pub mod epoll;

pub mod control;
pub mod copy;
pub mod poll;
pub mod rw;
