//! Kernel directories as ordinary `DIR` streams. glibc's `DIR` is opaque,
//! so a kernel directory's `DIR *` is a heap object of ours; the pointers
//! handed out are kept in a registry, and readdir/closedir/... on one of
//! them is served here, on any other by libc. The stream reads the
//! kernel's `getdents64` records (whose header is glibc's `struct
//! dirent64`, the same as `struct dirent` on x86_64).
//!
//! glibc's own users of these functions (`scandir`, `ftw`, `glob`) call
//! them internally, out of the hooks' reach; `scandir`/`scandir64`/
//! `scandirat` are served here for kernel paths, `ftw`/`nftw`/`glob` are
//! not.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use lkl::syscall::{abi, nr};

use crate::hijack::call::{arg, close_kernel_fd, kcall};
use crate::hijack::fdtable;
use crate::hijack::fs::open::kernel_open;
use crate::hijack::fs::paths::{route, Route};
use crate::hijack::host::{errno, fail, libc_fn, set_errno};

/// A kernel directory stream.
struct KDir {
    /// The host number of the kernel directory descriptor (`dirfd`).
    hfd: c_int,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// What readdir returned last.
    ent: libc::dirent64,
    /// The position after the last entry returned (telldir).
    off: i64,
}

/// The streams handed out (addresses), and how many there are (0 lets
/// host streams skip the lock).
static DIRS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// `dirp` as a kernel directory stream of ours, if it is one.
fn kernel_stream(dirp: *mut libc::DIR) -> Option<*mut KDir> {
    if COUNT.load(Ordering::Acquire) == 0 || dirp.is_null() {
        return None;
    }
    let list = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    list.contains(&(dirp as usize))
        .then_some(dirp.cast::<KDir>())
}

/// A stream over kernel descriptor `hfd` (a host number in the table).
fn new_stream(hfd: c_int) -> *mut libc::DIR {
    let d = Box::new(KDir {
        hfd,
        buf: vec![0u8; 32 << 10],
        pos: 0,
        end: 0,
        // SAFETY: all-zero is a valid dirent64 (integers and bytes).
        ent: unsafe { std::mem::zeroed() },
        off: 0,
    });
    let ptr = Box::into_raw(d);
    DIRS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ptr as usize);
    COUNT.fetch_add(1, Ordering::AcqRel);
    ptr.cast::<libc::DIR>()
}

/// The next entry of a kernel stream, or None at the end (errno set and
/// None on error).
fn next(d: &mut KDir) -> Option<*mut libc::dirent64> {
    const HDR: usize = 19; // d_ino, d_off, d_reclen, d_type
    if d.pos >= d.end {
        let Some(k) = fdtable::kernel_fd(d.hfd) else {
            set_errno(libc::EBADF);
            return None;
        };
        let n = kcall(
            nr::GETDENTS64,
            [
                k.into(),
                arg!(d.buf.as_mut_ptr()),
                d.buf.len() as i64,
                0,
                0,
                0,
            ],
        );
        if n <= 0 {
            return None;
        }
        d.pos = 0;
        d.end = n as usize;
    }
    let rec = &d.buf[d.pos..d.end];
    if rec.len() < HDR {
        d.pos = d.end;
        return None;
    }
    let ino = u64::from_ne_bytes(rec[0..8].try_into().ok()?);
    let off = i64::from_ne_bytes(rec[8..16].try_into().ok()?);
    let reclen = usize::from(u16::from_ne_bytes(rec[16..18].try_into().ok()?));
    let dtype = rec[18];
    if reclen < HDR || reclen > rec.len() {
        d.pos = d.end;
        return None;
    }
    let name = &rec[HDR..reclen];
    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
    let len = name.len().min(255);
    d.ent.d_ino = ino;
    d.ent.d_off = off;
    d.ent.d_reclen = ((HDR + len + 1 + 7) & !7) as u16;
    d.ent.d_type = dtype;
    for (dst, &src) in d.ent.d_name.iter_mut().zip(&name[..len]) {
        *dst = src as c_char;
    }
    d.ent.d_name[len] = 0;
    d.pos += reclen;
    d.off = off;
    Some(&mut d.ent as *mut libc::dirent64)
}

/// A kernel stream for a kernel path.
fn kernel_opendir(kdir: i32, path: &std::ffi::CStr) -> *mut libc::DIR {
    let hfd = kernel_open(
        kdir,
        path,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    );
    if hfd < 0 {
        return std::ptr::null_mut();
    }
    new_stream(hfd)
}

/// # Safety
/// libc's contract for `opendir`.
#[no_mangle]
pub unsafe extern "C" fn opendir(path: *const c_char) -> *mut libc::DIR {
    match route(libc::AT_FDCWD, path) {
        Route::Kernel(d, k) => kernel_opendir(d, &k),
        r => {
            let p = r.host_path(path);
            libc_fn!(opendir, fn(*const c_char) -> *mut libc::DIR; p; or std::ptr::null_mut())
        }
    }
}

/// # Safety
/// libc's contract for `fdopendir` (the stream owns the descriptor).
#[no_mangle]
pub unsafe extern "C" fn fdopendir(fd: c_int) -> *mut libc::DIR {
    if let Some(k) = fdtable::kernel_fd(fd) {
        let mut st = abi::Stat::default();
        let r = kcall(
            nr::FSTAT,
            [k.into(), arg!(&mut st as *mut abi::Stat), 0, 0, 0, 0],
        );
        if r < 0 {
            return std::ptr::null_mut();
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            set_errno(libc::ENOTDIR);
            return std::ptr::null_mut();
        }
        return new_stream(fd);
    }
    libc_fn!(fdopendir, fn(c_int) -> *mut libc::DIR; fd; or std::ptr::null_mut())
}

macro_rules! readdir_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(dirp: *mut libc::DIR) -> *mut libc::dirent64 {
            if let Some(d) = kernel_stream(dirp) {
                // readdir reports the end with NULL and errno untouched.
                let saved = errno();
                set_errno(0);
                // SAFETY: a stream of ours, alive until closedir.
                let r = next(unsafe { &mut *d });
                if r.is_some() || errno() == 0 {
                    set_errno(saved);
                }
                return r.unwrap_or(std::ptr::null_mut());
            }
            libc_fn!($name, fn(*mut libc::DIR) -> *mut libc::dirent64; dirp; or std::ptr::null_mut())
        }
    };
}
readdir_hook!(readdir);
readdir_hook!(readdir64);

macro_rules! readdir_r_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            dirp: *mut libc::DIR,
            entry: *mut libc::dirent64,
            result: *mut *mut libc::dirent64,
        ) -> c_int {
            if let Some(d) = kernel_stream(dirp) {
                set_errno(0);
                // SAFETY: a stream of ours, alive until closedir.
                let r = next(unsafe { &mut *d });
                let e = errno();
                match r {
                    Some(ent) => {
                        // SAFETY: the program's entry buffer and result slot.
                        unsafe {
                            entry.write_unaligned(ent.read());
                            *result = entry;
                        }
                        return 0;
                    }
                    None => {
                        // SAFETY: the program's result slot.
                        unsafe { *result = std::ptr::null_mut() };
                        return e;
                    }
                }
            }
            match libc_fn!(
                $name,
                fn(*mut libc::DIR, *mut libc::dirent64, *mut *mut libc::dirent64) -> c_int
            ) {
                // SAFETY: libc's function with the program's arguments.
                Some(f) => unsafe { f(dirp, entry, result) },
                None => libc::ENOSYS,
            }
        }
    };
}
readdir_r_hook!(readdir_r);
readdir_r_hook!(readdir64_r);

/// # Safety
/// libc's contract for `closedir`.
#[no_mangle]
pub unsafe extern "C" fn closedir(dirp: *mut libc::DIR) -> c_int {
    if kernel_stream(dirp).is_some() {
        let mut list = DIRS.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|&p| p != dirp as usize);
        COUNT.fetch_sub(1, Ordering::AcqRel);
        drop(list);
        // SAFETY: a stream of ours, made by Box::into_raw, now forgotten.
        let d = unsafe { Box::from_raw(dirp.cast::<KDir>()) };
        return close_kernel_fd(d.hfd);
    }
    libc_fn!(closedir, fn(*mut libc::DIR) -> c_int; dirp)
}

/// # Safety
/// libc's contract for `dirfd`.
#[no_mangle]
pub unsafe extern "C" fn dirfd(dirp: *mut libc::DIR) -> c_int {
    if let Some(d) = kernel_stream(dirp) {
        // SAFETY: a stream of ours.
        return unsafe { (*d).hfd };
    }
    libc_fn!(dirfd, fn(*mut libc::DIR) -> c_int; dirp)
}

fn kseek(d: &mut KDir, pos: i64) {
    if let Some(k) = fdtable::kernel_fd(d.hfd) {
        let _ = kcall(nr::LSEEK, [k.into(), pos, libc::SEEK_SET.into(), 0, 0, 0]);
    }
    d.pos = 0;
    d.end = 0;
    d.off = pos;
}

/// # Safety
/// libc's contract for `rewinddir`.
#[no_mangle]
pub unsafe extern "C" fn rewinddir(dirp: *mut libc::DIR) {
    if let Some(d) = kernel_stream(dirp) {
        // SAFETY: a stream of ours.
        return kseek(unsafe { &mut *d }, 0);
    }
    if let Some(f) = libc_fn!(rewinddir, fn(*mut libc::DIR) -> ()) {
        // SAFETY: libc's function with the program's stream.
        unsafe { f(dirp) }
    }
}

/// # Safety
/// libc's contract for `seekdir`.
#[no_mangle]
pub unsafe extern "C" fn seekdir(dirp: *mut libc::DIR, pos: libc::c_long) {
    if let Some(d) = kernel_stream(dirp) {
        // SAFETY: a stream of ours.
        return kseek(unsafe { &mut *d }, pos);
    }
    if let Some(f) = libc_fn!(seekdir, fn(*mut libc::DIR, libc::c_long) -> ()) {
        // SAFETY: libc's function with the program's arguments.
        unsafe { f(dirp, pos) }
    }
}

/// # Safety
/// libc's contract for `telldir`.
#[no_mangle]
pub unsafe extern "C" fn telldir(dirp: *mut libc::DIR) -> libc::c_long {
    if let Some(d) = kernel_stream(dirp) {
        // SAFETY: a stream of ours.
        return unsafe { (*d).off };
    }
    libc_fn!(telldir, fn(*mut libc::DIR) -> libc::c_long; dirp)
}

type Filter = Option<unsafe extern "C" fn(*const libc::dirent64) -> c_int>;
type Compar = Option<
    unsafe extern "C" fn(*const *const libc::dirent64, *const *const libc::dirent64) -> c_int,
>;

/// scandir over a kernel stream: the entries the filter keeps, each a
/// malloc'd copy, in a malloc'd array, sorted by `compar`.
fn kernel_scandir(
    dirp: *mut libc::DIR,
    namelist: *mut *mut *mut libc::dirent64,
    filter: Filter,
    compar: Compar,
) -> c_int {
    let Some(d) = kernel_stream(dirp) else {
        return -1;
    };
    let mut list: Vec<*mut libc::dirent64> = Vec::new();
    let free_all = |list: &[*mut libc::dirent64]| {
        for &e in list {
            // SAFETY: our own malloc'd entries.
            unsafe { libc::free(e.cast()) };
        }
    };
    set_errno(0);
    // SAFETY: a stream of ours, alive until the closedir below.
    while let Some(ent) = next(unsafe { &mut *d }) {
        if let Some(f) = filter {
            // SAFETY: the program's filter on an entry of ours.
            if unsafe { f(ent) } == 0 {
                continue;
            }
        }
        // SAFETY: malloc of a whole dirent64.
        let copy =
            unsafe { libc::malloc(std::mem::size_of::<libc::dirent64>()) }.cast::<libc::dirent64>();
        if copy.is_null() {
            free_all(&list);
            return fail(libc::ENOMEM);
        }
        // SAFETY: both point to whole dirent64s.
        unsafe { copy.write(ent.read()) };
        list.push(copy);
    }
    let e = errno();
    if e != 0 {
        free_all(&list);
        return fail(e);
    }
    let n = list.len();
    // SAFETY: malloc of the pointer array (at least one slot).
    let arr = unsafe { libc::malloc(n.max(1) * std::mem::size_of::<*mut libc::dirent64>()) }
        .cast::<*mut libc::dirent64>();
    if arr.is_null() {
        free_all(&list);
        return fail(libc::ENOMEM);
    }
    // SAFETY: `arr` holds n pointers.
    unsafe { std::ptr::copy_nonoverlapping(list.as_ptr(), arr, n) };
    if let Some(c) = compar {
        // SAFETY: qsort over our array with the program's comparison, the
        // way glibc's scandir calls it (two pointers to entry pointers).
        unsafe {
            libc::qsort(
                arr.cast(),
                n,
                std::mem::size_of::<*mut libc::dirent64>(),
                Some(std::mem::transmute::<
                    unsafe extern "C" fn(
                        *const *const libc::dirent64,
                        *const *const libc::dirent64,
                    ) -> c_int,
                    unsafe extern "C" fn(*const c_void, *const c_void) -> c_int,
                >(c)),
            )
        };
    }
    // SAFETY: the program's result slot.
    unsafe { *namelist = arr };
    n as c_int
}

fn scan_kernel(
    kdir: i32,
    path: &std::ffi::CStr,
    namelist: *mut *mut *mut libc::dirent64,
    filter: Filter,
    compar: Compar,
) -> c_int {
    let dirp = kernel_opendir(kdir, path);
    if dirp.is_null() {
        return -1;
    }
    let n = kernel_scandir(dirp, namelist, filter, compar);
    // This thread's errno, kept across the close.
    let e = errno();
    // SAFETY: our own stream.
    unsafe { closedir(dirp) };
    set_errno(e);
    n
}

macro_rules! scandir_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            path: *const c_char,
            namelist: *mut *mut *mut libc::dirent64,
            filter: Filter,
            compar: Compar,
        ) -> c_int {
            match route(libc::AT_FDCWD, path) {
                Route::Kernel(d, k) => scan_kernel(d, &k, namelist, filter, compar),
                r => {
                    let p = r.host_path(path);
                    libc_fn!($name, fn(*const c_char, *mut *mut *mut libc::dirent64, Filter, Compar) -> c_int;
                        p, namelist, filter, compar)
                }
            }
        }
    };
}
scandir_hook!(scandir);
scandir_hook!(scandir64);

macro_rules! scandirat_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            dirfd: c_int,
            path: *const c_char,
            namelist: *mut *mut *mut libc::dirent64,
            filter: Filter,
            compar: Compar,
        ) -> c_int {
            match route(dirfd, path) {
                Route::Kernel(d, k) => scan_kernel(d, &k, namelist, filter, compar),
                r => {
                    let p = r.host_path(path);
                    libc_fn!($name, fn(c_int, *const c_char, *mut *mut *mut libc::dirent64, Filter, Compar) -> c_int;
                        dirfd, p, namelist, filter, compar)
                }
            }
        }
    };
}
scandirat_hook!(scandirat);
scandirat_hook!(scandirat64);
