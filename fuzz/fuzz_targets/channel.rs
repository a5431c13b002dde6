//! The kernel server's decoder of its clients' packets on arbitrary bytes:
//! it must return a request or None, never panic; a request it accepts
//! must encode to a record that decodes to the same request, and the
//! descriptor pairs after a record decode only to non-negative numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lkl::syscall::wire::{decode_pairs, Request, RECORD};

fuzz_target!(|data: &[u8]| {
    if let Some(req) = Request::decode(data) {
        assert_eq!(Request::decode(&req.encode()), Some(req));
    }
    if let Some(rest) = data.get(RECORD.min(data.len())..) {
        if let Some(pairs) = decode_pairs(rest) {
            assert!(pairs.iter().all(|&(h, k)| h >= 0 && k >= 0));
        }
    }
});
