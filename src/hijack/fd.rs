//! Calls on any descriptor.

pub mod epoll;
pub mod poll;
