//! The kernel's copies of program memory are fault-safe (docs/uaccess.md):
//! a buffer in an unmapped or protected page gets EFAULT or a short count,
//! as from the host kernel, never a crash; the program's own SIGSEGV
//! handler still gets the program's own faults, installed before boot or
//! after; and the same through the hijack, for a C program.

use std::ffi::c_void;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lkl::syscall::{self as sys, abi, nr, Errno};
use testkit::images::Scratch;
use testkit::{boot, in_child, kernel_has_net, run_limited};

const LIMIT: Duration = Duration::from_secs(120);
const PAGE: usize = 4096;

/// `n` fresh read-write pages.
fn pages(n: usize) -> *mut u8 {
    // SAFETY: a fresh anonymous private mapping at an address of the
    // system's choosing.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            n * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p.cast()
}

/// Changes the protection of `n` pages at `p` (ours, from `pages`).
fn protect(p: *mut u8, n: usize, prot: i32) {
    // SAFETY: pages this test mapped and no Rust reference points into.
    assert_eq!(unsafe { libc::mprotect(p.cast(), n * PAGE, prot) }, 0);
}

/// Unmaps `n` pages at `p` (ours, from `pages`).
fn unmap(p: *mut u8, n: usize) {
    // SAFETY: as in `protect`.
    assert_eq!(unsafe { libc::munmap(p.cast(), n * PAGE) }, 0);
}

/// A kernel call with a raw buffer pointer: (fd, buf, len).
fn call3(no: i64, fd: i32, buf: *const u8, len: usize) -> Result<i64, Errno> {
    // SAFETY: the kernel checks the buffer itself: that is what is tested.
    unsafe { sys::raw(no, [fd as i64, buf as i64, len as i64, 0, 0, 0]) }
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A file in the kernel's ramfs holding `len` bytes of `pattern`.
fn kernel_file(path: &str, len: usize) -> i32 {
    let fd = sys::open(path, abi::O_CREAT | abi::O_RDWR | abi::O_TRUNC, 0o644).unwrap();
    let data: Vec<u8> = (0..len).map(pattern).collect();
    assert_eq!(sys::write(fd, &data), Ok(len));
    fd
}

#[test]
fn read_into_a_partly_unmapped_buffer() {
    in_child("read_into_a_partly_unmapped_buffer", LIMIT, || {
        let _k = boot(32 << 20);
        assert!(lkl::host::uaccess::fault_handler_installed());
        let fd = kernel_file("/data", 3 * PAGE);

        // Second page PROT_NONE, then unmapped: the first page's bytes, as
        // Linux returns what it copied before the fault.
        for unmapped in [false, true] {
            let p = pages(2);
            if unmapped {
                unmap(p.wrapping_add(PAGE), 1);
            } else {
                protect(p.wrapping_add(PAGE), 1, libc::PROT_NONE);
            }
            sys::lseek(fd, 0, 0).unwrap();
            let n = call3(nr::READ, fd, p, 2 * PAGE);
            println!(
                "read of 2 pages, second one {}: {n:?}",
                if unmapped { "unmapped" } else { "PROT_NONE" }
            );
            assert!(
                n == Ok(PAGE as i64) || n == Err(Errno::EFAULT),
                "unmapped {unmapped}: {n:?}"
            );
            if n.is_ok() {
                // SAFETY: the first page is mapped and the kernel wrote it.
                let got = unsafe { std::slice::from_raw_parts(p, PAGE) };
                assert!(got.iter().enumerate().all(|(i, &b)| b == pattern(i)));
            }
            unmap(p, if unmapped { 1 } else { 2 });
        }

        // Wholly unmapped, read-only, and impossible buffers: EFAULT.
        let p = pages(1);
        protect(p, 1, libc::PROT_READ);
        assert_eq!(call3(nr::PREAD64, fd, p, 10), Err(Errno::EFAULT));
        unmap(p, 1);
        assert_eq!(call3(nr::PREAD64, fd, p, 10), Err(Errno::EFAULT));
        assert_eq!(call3(nr::PREAD64, fd, ptr::null(), 10), Err(Errno::EFAULT));
        let kernel_half = 0xffff_8000_0000_1000usize as *const u8;
        assert_eq!(call3(nr::PREAD64, fd, kernel_half, 10), Err(Errno::EFAULT));
        let noncanonical = 0x0000_9000_0000_0000usize as *const u8;
        assert_eq!(call3(nr::PREAD64, fd, noncanonical, 10), Err(Errno::EFAULT));
        // The kernel is fine: the next read works.
        let mut buf = [0u8; 16];
        assert_eq!(sys::pread(fd, &mut buf, 3), Ok(16));
        assert!(buf.iter().enumerate().all(|(i, &b)| b == pattern(i + 3)));
    });
}

#[test]
fn write_from_an_unmapped_pointer() {
    in_child("write_from_an_unmapped_pointer", LIMIT, || {
        let _k = boot(32 << 20);
        let fd = kernel_file("/data", 100);
        let p = pages(1);
        unmap(p, 1);
        assert_eq!(call3(nr::WRITE, fd, p, 100), Err(Errno::EFAULT));
        assert_eq!(call3(nr::WRITE, fd, ptr::null(), 100), Err(Errno::EFAULT));
        // A path in an unmapped page: strncpy_from_user.
        // SAFETY: the kernel checks the pointer; nothing is written.
        let r = unsafe {
            sys::raw(
                nr::OPENAT,
                [
                    abi::AT_FDCWD as i64,
                    p as i64,
                    abi::O_RDONLY as i64,
                    0,
                    0,
                    0,
                ],
            )
        };
        assert_eq!(r, Err(Errno::EFAULT));
        // A path that runs into an unmapped page before its NUL.
        let q = pages(2);
        unmap(q.wrapping_add(PAGE), 1);
        // SAFETY: the last 4 bytes of the mapped page.
        unsafe { ptr::copy_nonoverlapping(b"/dat".as_ptr(), q.add(PAGE - 4), 4) };
        // SAFETY: as above.
        let r = unsafe {
            sys::raw(
                nr::OPENAT,
                [
                    abi::AT_FDCWD as i64,
                    q.wrapping_add(PAGE - 4) as i64,
                    0,
                    0,
                    0,
                    0,
                ],
            )
        };
        assert_eq!(r, Err(Errno::EFAULT));
        // ... and one whose NUL is the last mapped byte opens.
        // SAFETY: as above.
        unsafe { ptr::copy_nonoverlapping(c"/data".as_ptr().cast::<u8>(), q.add(PAGE - 6), 6) };
        // SAFETY: as above.
        let r = unsafe {
            sys::raw(
                nr::OPENAT,
                [
                    abi::AT_FDCWD as i64,
                    q.wrapping_add(PAGE - 6) as i64,
                    0,
                    0,
                    0,
                    0,
                ],
            )
        };
        let fd2 = r.expect("open of a path ending at a page's end") as i32;
        sys::close(fd2).unwrap();
        unmap(q, 1);
        // The file is as it was.
        let mut buf = vec![0u8; 200];
        assert_eq!(sys::pread(fd, &mut buf, 0), Ok(100));
        assert!(buf[..100].iter().enumerate().all(|(i, &b)| b == pattern(i)));
    });
}

#[test]
fn recv_of_1mib_into_a_partly_unmapped_buffer() {
    in_child("recv_of_1mib_into_a_partly_unmapped_buffer", LIMIT, || {
        let _k = boot(64 << 20);
        if !kernel_has_net() {
            println!("kernel without networking: skipped");
            return;
        }
        sys::if_set_up("lo", true).unwrap();
        const TOTAL: usize = 1 << 20;
        let l = sys::socket(abi::AF_INET, abi::SOCK_STREAM, 0).unwrap();
        sys::bind_in(l, &abi::SockAddrIn::new(std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
        sys::listen(l, 1).unwrap();
        let port = sys::getsockname_in(l).unwrap().port();
        let sender = std::thread::spawn(move || {
            let c = sys::socket(abi::AF_INET, abi::SOCK_STREAM, 0).unwrap();
            sys::connect_in(
                c,
                &abi::SockAddrIn::new(std::net::Ipv4Addr::LOCALHOST, port),
            )
            .unwrap();
            let data: Vec<u8> = (0..TOTAL).map(pattern).collect();
            let mut sent = 0;
            while sent < TOTAL {
                sent += sys::send(c, &data[sent..], 0).unwrap();
            }
            sys::close(c).unwrap();
        });
        let c = sys::accept(l, 0).unwrap();
        // 1 MiB whose second half is unmapped, the first half partly
        // PROT_NONE too.
        let n_pages = TOTAL / PAGE;
        let p = pages(n_pages);
        unmap(p.wrapping_add(TOTAL / 2), n_pages / 2);
        protect(p.wrapping_add(TOTAL / 4), 1, libc::PROT_NONE);
        // SAFETY: the kernel checks the buffer itself.
        let r = unsafe {
            sys::raw(
                nr::RECVFROM,
                [
                    c as i64,
                    p as i64,
                    TOTAL as i64,
                    0x100, /* MSG_WAITALL */
                    0,
                    0,
                ],
            )
        };
        println!("recv of 1 MiB, MSG_WAITALL, into 256 KiB then PROT_NONE: {r:?}");
        let first = match r {
            Ok(n) => {
                assert!(
                    n as usize <= TOTAL / 4,
                    "{n} bytes into {} mapped",
                    TOTAL / 4
                );
                n as usize
            }
            Err(e) => {
                assert_eq!(e, Errno::EFAULT);
                0
            }
        };
        // SAFETY: `first` bytes of the mapped first quarter were written.
        let got = unsafe { std::slice::from_raw_parts(p, first) };
        assert!(got.iter().enumerate().all(|(i, &b)| b == pattern(i)));
        // The rest arrives in order into a good buffer: nothing lost.
        let mut rest = vec![0u8; TOTAL];
        let mut total = first;
        loop {
            let n = sys::recv(c, &mut rest, 0).unwrap();
            if n == 0 {
                break;
            }
            assert!(
                rest[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == pattern(total + i)),
                "data out of order at {total}"
            );
            total += n;
        }
        assert_eq!(total, TOTAL);
        sender.join().unwrap();
        unmap(p, n_pages / 2);
    });
}

static HITS: AtomicUsize = AtomicUsize::new(0);
static PAGE_AT: AtomicUsize = AtomicUsize::new(0);

/// The program's own SIGSEGV handler, as a garbage collector's write
/// barrier has it: a fault on its page makes the page writable and counts;
/// any other fault goes back to the default action.
extern "C" fn program_handler(_sig: i32, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the kernel's siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE_AT.load(Ordering::SeqCst);
    if page != 0 && (page..page + PAGE).contains(&addr) {
        HITS.fetch_add(1, Ordering::SeqCst);
        protect(page as *mut u8, 1, libc::PROT_READ | libc::PROT_WRITE);
        return;
    }
    // SAFETY: all-zero is SIG_DFL; a fault repeats and kills.
    unsafe {
        let dfl: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGSEGV, &dfl, ptr::null_mut());
    }
}

fn install_program_handler() {
    // SAFETY: all-zero is a valid sigaction; then our handler and flags.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = program_handler as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGSEGV, &act, ptr::null_mut()), 0);
    }
}

/// The kernel's fault on the program's page is the kernel's (EFAULT, the
/// program's handler not called); the program's own is the program's.
fn kernel_fault_then_program_fault() {
    let fd = kernel_file("/data", 100);
    let p = pages(1);
    protect(p, 1, libc::PROT_NONE);
    PAGE_AT.store(p as usize, Ordering::SeqCst);
    HITS.store(0, Ordering::SeqCst);
    assert_eq!(call3(nr::PREAD64, fd, p, 100), Err(Errno::EFAULT));
    assert_eq!(HITS.load(Ordering::SeqCst), 0);
    // SAFETY: the program's own store to its own page: its handler makes
    // the page writable and the store completes.
    unsafe { ptr::write_volatile(p.add(10), 42) };
    assert_eq!(HITS.load(Ordering::SeqCst), 1);
    // SAFETY: now writable.
    assert_eq!(unsafe { ptr::read_volatile(p.add(10)) }, 42);
    PAGE_AT.store(0, Ordering::SeqCst);
    unmap(p, 1);
    sys::close(fd).unwrap();
}

#[test]
fn program_sigsegv_handler_installed_before_boot() {
    in_child(
        "program_sigsegv_handler_installed_before_boot",
        LIMIT,
        || {
            install_program_handler();
            let _k = boot(32 << 20);
            assert!(lkl::host::uaccess::fault_handler_installed());
            kernel_fault_then_program_fault();
            // And again: nothing was used up.
            kernel_fault_then_program_fault();
        },
    );
}

#[test]
fn program_sigsegv_handler_installed_after_boot() {
    in_child(
        "program_sigsegv_handler_installed_after_boot",
        LIMIT,
        || {
            let _k = boot(32 << 20);
            install_program_handler();
            // The plain sigaction replaced ours: the program's fault is its own.
            assert!(!lkl::host::uaccess::fault_handler_installed());
            let p = pages(1);
            protect(p, 1, libc::PROT_NONE);
            PAGE_AT.store(p as usize, Ordering::SeqCst);
            // SAFETY: as in kernel_fault_then_program_fault.
            unsafe { ptr::write_volatile(p, 1) };
            assert_eq!(HITS.load(Ordering::SeqCst), 1);
            unmap(p, 1);
            // Ours back in front of it: both kinds of fault go where they belong.
            lkl::host::uaccess::install_fault_handler().unwrap();
            assert!(lkl::host::uaccess::fault_handler_installed());
            kernel_fault_then_program_fault();
        },
    );
}

/// Runs this test binary's `name` as a child whose body must die of
/// SIGSEGV (the default action, reached through our handler).
fn dies_of_sigsegv(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("LKL_USER_COPY_CRASH", name);
    let out = run_limited(cmd, LIMIT).expect("crash child hung");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "{name}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn crash_child(name: &str) -> bool {
    std::env::var("LKL_USER_COPY_CRASH").as_deref() == Ok(name)
}

#[test]
fn a_program_fault_without_a_handler_still_kills() {
    const NAME: &str = "a_program_fault_without_a_handler_still_kills";
    if !crash_child(NAME) {
        return dies_of_sigsegv(NAME);
    }
    let _k = boot(32 << 20);
    let fd = kernel_file("/data", 10);
    assert_eq!(call3(nr::PREAD64, fd, ptr::null(), 10), Err(Errno::EFAULT));
    // SAFETY: none: this is the program's own bug, which must kill it.
    unsafe { ptr::write_volatile(16 as *mut u8, 1) };
    unreachable!("survived a store to address 16");
}

#[test]
fn a_handler_chaining_back_to_ours_does_not_loop() {
    const NAME: &str = "a_handler_chaining_back_to_ours_does_not_loop";
    if !crash_child(NAME) {
        return dies_of_sigsegv(NAME);
    }
    static OLD: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn chains_to_old(sig: i32, info: *mut libc::siginfo_t, ctx: *mut c_void) {
        // SAFETY: the handler it replaced, an SA_SIGINFO one (ours).
        let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(OLD.load(Ordering::SeqCst)) };
        f(sig, info, ctx);
    }
    let _k = boot(32 << 20);
    // SAFETY: our own structs; the old action is ours, from boot.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        let mut old: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = chains_to_old as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        assert_eq!(libc::sigaction(libc::SIGSEGV, &act, &mut old), 0);
        OLD.store(old.sa_sigaction, Ordering::SeqCst);
    }
    // Ours in front again: ours -> chains_to_old -> ours again, which must
    // see the loop and take the default action.
    lkl::host::uaccess::install_fault_handler().unwrap();
    let fd = kernel_file("/data", 10);
    assert_eq!(call3(nr::PREAD64, fd, ptr::null(), 10), Err(Errno::EFAULT));
    // SAFETY: none: the program's own bug.
    unsafe { ptr::write_volatile(16 as *mut u8, 1) };
    unreachable!("survived a store to address 16");
}

/// A C program under the hijack: recv into PROT_NONE and unmapped pages
/// of a kernel socket (the host's stack cannot reach its listener) gets
/// EFAULT (as the host gives, checked in the same
/// run), its own SIGSEGV handler, installed after the library's, gets its
/// own fault and none of the kernel's, sees itself as the installed
/// handler, and with the default action its NULL store kills it.
const C_PROGRAM: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile char *page;

/* A system call that no library hook can see: the host's own stack. */
static long host_syscall3(long n, long a, long b, long c)
{
	long r;

	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}
static volatile int hits;

static void handler(int sig, siginfo_t *si, void *ctx)
{
	(void)sig; (void)ctx;
	if ((char *)si->si_addr >= page && (char *)si->si_addr < page + 4096) {
		hits++;
		mprotect((void *)page, 4096, PROT_READ | PROT_WRITE);
		return;
	}
	signal(SIGSEGV, SIG_DFL);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), c, s;
	char *hole;
	struct sigaction act, old;
	long r1, r2, r3;
	int e1, e2, e3;

	if (bind(l, (void *)&a, sizeof(a)) || listen(l, 1) || getsockname(l, (void *)&a, &alen))
		return 2;
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (void *)&a, sizeof(a)) || (s = accept(l, 0, 0)) < 0)
		return 3;
	if (send(s, "hello", 5, 0) != 5)
		return 4;
	{
		long h = host_syscall3(SYS_socket, AF_INET, SOCK_STREAM, 0);
		long r = host_syscall3(SYS_connect, h, (long)&a, sizeof(a));

		printf("the host's stack reaches the listener: %s\n", r == 0 ? "yes" : "no");
	}
	usleep(50000);

	memset(&act, 0, sizeof(act));
	act.sa_sigaction = handler;
	act.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &act, 0);
	page = mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	hole = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(hole, 4096);

	r1 = recv(c, (void *)page, 5, 0); e1 = errno;
	r2 = recv(c, hole, 5, 0); e2 = errno;
	r3 = recv(c, (void *)page, 5, MSG_PEEK); e3 = errno;
	printf("recv into PROT_NONE %ld %s\n", r1, r1 < 0 ? strerrorname_np(e1) : "");
	printf("recv into unmapped %ld %s\n", r2, r2 < 0 ? strerrorname_np(e2) : "");
	printf("peek into PROT_NONE %ld %s\n", r3, r3 < 0 ? strerrorname_np(e3) : "");
	printf("handler calls after the kernel's faults %d\n", hits);
	page[0] = 'x';
	printf("handler calls after the program's fault %d\n", hits);
	sigaction(SIGSEGV, 0, &old);
	printf("installed handler is the program's %d\n", old.sa_sigaction == handler);
	{
		char buf[8] = { 0 };
		long n = recv(c, buf, 5, 0);
		printf("data still there %ld %s\n", n, buf);
	}
	fflush(stdout);
	if (argc > 1) {
		signal(SIGSEGV, SIG_DFL);
		*(volatile int *)16 = 1;
		printf("survived\n");
	}
	return 0;
}
"#;

#[test]
fn hijacked_c_program_gets_efault_and_keeps_its_handler() {
    let t = Scratch::new("user_copy");
    let src = t.path("fault.c");
    let exe = t.path("fault");
    std::fs::write(&src, C_PROGRAM).unwrap();
    let cc = Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("cc");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let exe = exe.to_str().unwrap();
    let config = t.path("empty.json");
    std::fs::write(&config, "{}").unwrap();
    let envs = [("LKL_HIJACK_CONFIG_FILE", config.to_str().unwrap())];

    let host = run_limited(Command::new(exe), LIMIT).expect("host run hung");
    let ours = run_limited(testkit::hijack::command(&[exe], &envs), LIMIT).expect("hang");
    let host_out = String::from_utf8_lossy(&host.stdout).into_owned();
    let our_out = String::from_utf8_lossy(&ours.stdout).into_owned();
    println!("host:\n{host_out}hijacked:\n{our_out}");
    assert!(host.status.success(), "host run: {:?}", host.status);
    assert!(ours.status.success(), "{}", testkit::hijack::show(&ours));
    assert!(
        host_out.contains("recv into PROT_NONE -1 EFAULT"),
        "{host_out}"
    );
    assert!(host_out.contains("handler calls after the program's fault 1"));
    // The hijacked program's sockets are the kernel's, which the host's
    // stack cannot reach; everything else is as on the host.
    let (reach, ours_reach) = ("reaches the listener: yes", "reaches the listener: no");
    assert!(host_out.contains(reach), "{host_out}");
    assert!(our_out.contains(ours_reach), "{our_out}");
    assert_eq!(our_out.replace(ours_reach, reach), host_out);

    // With the default action back, the program's own NULL store kills it.
    let ours = run_limited(testkit::hijack::command(&[exe, "crash"], &envs), LIMIT).expect("hang");
    assert_eq!(
        ours.status.signal(),
        Some(libc::SIGSEGV),
        "{}",
        testkit::hijack::show(&ours)
    );
}
