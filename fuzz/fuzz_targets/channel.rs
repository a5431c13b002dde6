//! The kernel server's decoder of its clients' packets on arbitrary bytes:
//! it must return a request or None, never panic; a request it accepts
//! must encode to a record that decodes to the same request, and the
//! descriptor pairs after a record decode only to non-negative numbers.
//! The same bytes as a channel's shared page (what a client may write
//! there): taking a request from it must not panic either, and what it
//! yields is a request that may travel in a page, under the sequence
//! number the page shows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lkl::syscall::wire::{decode_pairs, Request, SharedPage, RECORD};

/// A shared page whose words are `data` (zeros past its end).
fn page_of(data: &[u8]) -> SharedPage {
    let mut page = SharedPage::new();
    let size = std::mem::size_of::<SharedPage>();
    let n = data.len().min(size);
    // SAFETY: SharedPage is repr(C) of integers (atomics and padding),
    // valid for any bit pattern; at most its size is written, through a
    // unique borrow.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), std::ptr::addr_of_mut!(page).cast::<u8>(), n)
    };
    page
}

fuzz_target!(|data: &[u8]| {
    if let Some(req) = Request::decode(data) {
        assert_eq!(Request::decode(&req.encode()), Some(req));
    }
    if let Some(rest) = data.get(RECORD.min(data.len())..) {
        if let Some(pairs) = decode_pairs(rest) {
            assert!(pairs.iter().all(|&(h, k)| h >= 0 && k >= 0));
        }
    }
    let page = page_of(data);
    let last = data.first().map_or(0, |&b| u32::from(b));
    if let Some(Some((seq, req))) = page.take_request(last) {
        assert!(req.fits_page());
        assert_ne!(seq, last);
        assert_eq!(seq, page.req_seq.load(std::sync::atomic::Ordering::Relaxed));
    }
    let _ = page.take_reply(last);
});
