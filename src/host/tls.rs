//! Thread-local keys: the kernel keeps each application thread's host task
//! in one, and its destructor releases the task when the thread exits.

use std::ffi::{c_int, c_void};

use crate::sys::TlsKey;

pub(super) unsafe extern "C" fn tls_alloc(
    destructor: Option<unsafe extern "C" fn(*mut c_void)>,
) -> *mut TlsKey {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is a kernel
    // function that takes the stored pointer.
    if unsafe { libc::pthread_key_create(&mut key, destructor) } != 0 {
        return std::ptr::null_mut();
    }
    Box::into_raw(Box::new(key)).cast()
}

/// # Safety
/// `key` comes from `tls_alloc` and is not used again.
pub(super) unsafe extern "C" fn tls_free(key: *mut TlsKey) {
    if key.is_null() {
        return;
    }
    // SAFETY: the kernel frees the key once, at halt.
    let key = unsafe { Box::from_raw(key.cast::<libc::pthread_key_t>()) };
    // SAFETY: the key was created by pthread_key_create; deleting it means
    // destructors no longer run for threads that exit later.
    unsafe { libc::pthread_key_delete(*key) };
}

/// # Safety
/// `key` comes from `tls_alloc` and is still allocated.
pub(super) unsafe extern "C" fn tls_set(key: *mut TlsKey, data: *mut c_void) -> c_int {
    // SAFETY: see the function's contract.
    unsafe { libc::pthread_setspecific(*key.cast::<libc::pthread_key_t>(), data) }
}

/// # Safety
/// `key` comes from `tls_alloc` and is still allocated.
pub(super) unsafe extern "C" fn tls_get(key: *mut TlsKey) -> *mut c_void {
    // SAFETY: see the function's contract.
    unsafe { libc::pthread_getspecific(*key.cast::<libc::pthread_key_t>()) }
}
