//! The hijack's epoll over host and kernel descriptors together, and the
//! data/file calls on kernel descriptors (ppoll, pselect, sendfile, ...),
//! with hijacked Python programs.

use testkit::hijack::*;
use testkit::netns::in_netns;

#[testkit::needs(python3)]
#[test]
fn epoll_level_edge_oneshot_and_maxevents() {
    let script = r#"
import os, select, socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
A = a.fileno()
ep = select.epoll(); ep.register(A, select.EPOLLIN)
t = time.monotonic(); assert ep.poll(0.3) == []; dt = time.monotonic() - t
assert 0.29 <= dt < 2, dt                                  # timeout honoured
c.send(b"1")
assert ep.poll(2) == [(A, select.EPOLLIN)]
assert ep.poll(0) == [(A, select.EPOLLIN)], "level: still ready"
assert a.recv(8) == b"1" and ep.poll(0) == [], "level: consumed"
ep.modify(A, select.EPOLLIN | select.EPOLLET)
c.send(b"2")
assert ep.poll(2) == [(A, select.EPOLLIN)]
assert ep.poll(0.1) == [], "edge: reported once"
c.send(b"3")
assert ep.poll(2) == [(A, select.EPOLLIN)], "edge: new data is a new edge"
assert a.recv(8) == b"23"
ep.modify(A, select.EPOLLIN | select.EPOLLOUT | select.EPOLLONESHOT)
assert ep.poll(2) == [(A, select.EPOLLOUT)]
c.send(b"4"); assert ep.poll(0.1) == [], "oneshot: disarmed"
ep.modify(A, select.EPOLLIN | select.EPOLLONESHOT)
assert ep.poll(2) == [(A, select.EPOLLIN)], "oneshot: re-armed by MOD"
assert a.recv(8) == b"4"
# maxevents over 6 ready members, never more than asked, nobody starved
r, w = os.pipe(); ep.register(r, select.EPOLLIN); os.write(w, b"h")
ep.modify(A, select.EPOLLIN)
pairs = []
for i in range(5):
    x = socket.create_connection(s.getsockname()); y, _ = s.accept(); pairs.append((x, y))
    ep.register(y.fileno(), select.EPOLLIN); x.send(b"z")
seen = set()
for i in range(4):                       # host and kernel take turns going first
    ev = ep.poll(2, 2); assert 1 <= len(ev) <= 2, ev; seen |= {f for f, _ in ev}
assert seen == {r} | {y.fileno() for _, y in pairs}, seen
assert len(ep.poll(2, 64)) == 6
# closing a kernel member removes it (the peer sees the close: no notifier keeps it open)
x, y = pairs[0]; yf = y.fileno(); y.recv(1); y.close()
assert x.recv(1) == b"", "peer sees EOF"
assert yf not in {f for f, _ in ep.poll(0, 64)}
# EPOLL_CTL_DEL of a kernel member; errors as Linux gives them
ep.unregister(pairs[1][1].fileno())
try: ep.unregister(pairs[1][1].fileno()); raise SystemExit("no ENOENT")
except FileNotFoundError: pass
try: ep.register(pairs[2][1].fileno(), select.EPOLLIN); raise SystemExit("no EEXIST")
except FileExistsError: pass
ep.close()
print("epoll semantics ok")
"#;
    run_python(script, "epoll semantics ok");
}

#[testkit::needs(python3)]
#[test]
fn epoll_returns_pointer_data_as_stored() {
    // epoll_data as a 64-bit pointer (what C event loops store), through
    // libc's own epoll calls from ctypes, for a kernel socket and a host pipe.
    let script = r#"
import ctypes, os, socket, threading
libc = ctypes.CDLL(None, use_errno=True)
class Ev(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]
assert ctypes.sizeof(Ev) == 12
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
r, w = os.pipe()
ep = libc.epoll_create1(0); assert ep >= 0
K, H = 0xfeedfacecafebeef, 0x00007f0012345678
assert libc.epoll_ctl(ep, 1, a.fileno(), ctypes.byref(Ev(1, K))) == 0
assert libc.epoll_ctl(ep, 1, r, ctypes.byref(Ev(1 | (1 << 28), H))) == 0   # EPOLLEXCLUSIVE accepted
out = (Ev * 4)()
assert libc.epoll_wait(ep, out, 4, 50) == 0
threading.Timer(0.1, lambda: (c.send(b"k"), os.write(w, b"h"))).start()
got = {}
while len(got) < 2:
    n = libc.epoll_wait(ep, out, 4, 5000); assert n > 0, ctypes.get_errno()
    for i in range(n): got[out[i].data] = out[i].events
assert got == {K: 1, H: 1}, {hex(k): v for k, v in got.items()}
# epoll_pwait2 with a timespec: times out
class Ts(ctypes.Structure): _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]
os.read(r, 1); a.recv(1)
assert libc.epoll_pwait2(ep, out, 4, ctypes.byref(Ts(0, 20_000_000)), None) == 0
print("pointer data ok")
"#;
    run_python(script, "pointer data ok");
}

#[testkit::needs(python3)]
#[test]
fn program_with_600_host_descriptors_uses_kernel_sockets() {
    let script = r#"
import os, select, socket, tempfile
d = tempfile.mkdtemp()
files = []
for i in range(600):
    p = os.path.join(d, str(i)); open(p, "w").write("file %d" % i)
    files.append(os.open(p, os.O_RDONLY))
assert max(files) > 600
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
assert min(s.fileno(), c.fileno(), a.fileno()) > 600
for i in (0, 511, 512, 599):          # host files above LKL's old 512 threshold stay host
    assert os.pread(files[i], 64, 0) == b"file %d" % i
c.send(b"ping"); assert select.select([a, files[599]], [], [], 2)[0] == [a, files[599]]
assert a.recv(4) == b"ping"
r, w = os.pipe(); assert r > 600; os.write(w, b"h")
ep = select.epoll(); ep.register(a.fileno(), select.EPOLLIN); ep.register(r, select.EPOLLIN)
c.send(b"x"); assert sorted(f for f, _ in ep.poll(2)) == sorted([a.fileno(), r])
for f in files: os.close(f)
print("600 host fds ok")
"#;
    run_python(script, "600 host fds ok");
}

#[testkit::needs(root, tun, python3)]
#[test]
fn asyncio_echo_server_answers_a_host_client_over_tap() {
    in_netns(
        "asyncio_echo_server_answers_a_host_client_over_tap",
        "hjaio",
        tap_setup,
        || {
            let dir = std::env::temp_dir().join(format!("lkl-hijack-aio-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("tap.json");
            std::fs::write(&file, tap_config(None)).unwrap();
            // The server is hijacked (its sockets are the kernel's, its loop
            // asyncio's epoll); the client is a plain host process started
            // from a thread, so the loop keeps serving meanwhile.
            let script = r#"
import asyncio, subprocess, sys, threading
CLIENT = r'''
import hashlib, os, socket, sys, threading
port = int(sys.argv[1]); res = []
def one(i):
    data = os.urandom(1 << 20)
    s = socket.create_connection(("192.168.113.2", port), timeout=30)
    threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR))).start()
    got = bytearray()
    while True:
        b = s.recv(65536)
        if not b: break
        got += b
    res.append(hashlib.sha256(got).digest() == hashlib.sha256(data).digest() and len(got) == len(data))
ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print("client", sum(res), "of 4 echoed intact")
'''
async def echo(r, w):
    while True:
        b = await r.read(65536)
        if not b: break
        w.write(b); await w.drain()
    w.close()
async def main():
    srv = await asyncio.start_server(echo, "192.168.113.2", 0)
    port = srv.sockets[0].getsockname()[1]
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", CLIENT, str(port)],
                                  env={"LD_PRELOAD": ""}, capture_output=True, text=True, timeout=60)
    print(out.stdout.strip(), out.stderr.strip()[-500:])
    srv.close()
asyncio.run(main())
"#;
            let out = run_python_with(
                script,
                "client 4 of 4 echoed intact",
                &[("LKL_HIJACK_CONFIG_FILE", file.to_str().unwrap())],
            );
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", out.trim());
        },
    );
}

#[testkit::needs(python3)]
#[test]
fn sendfile_host_file_to_kernel_socket_and_back() {
    let script = r#"
import hashlib, os, socket, stat, tempfile, threading
data = os.urandom(3 * 1024 * 1024 + 12345)
src = tempfile.NamedTemporaryFile(); src.write(data); src.flush()
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
got = bytearray()
def reader():
    while len(got) < len(data):
        b = a.recv(1 << 16)
        if not b: break
        got.extend(b)
t = threading.Thread(target=reader); t.start()
fd = os.open(src.name, os.O_RDONLY); sent = 0
while sent < len(data):                          # host file -> kernel socket
    n = os.sendfile(c.fileno(), fd, sent, len(data) - sent); assert n > 0; sent += n
t.join()
assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), "sha256"
# the file position is untouched when an offset is given; without one it moves
assert os.lseek(fd, 0, os.SEEK_CUR) == 0
n = os.sendfile(c.fileno(), fd, None, 1000); assert n == 1000 and os.lseek(fd, 0, os.SEEK_CUR) == 1000
assert a.recv(2000) == data[:1000]
# kernel socket -> host file by sendfile, and by splice into a host pipe
dst = tempfile.TemporaryFile(); c.sendall(data[:70000])
moved = 0
while moved < 70000: moved += os.sendfile(dst.fileno(), a.fileno(), None, 70000 - moved)
dst.seek(0); assert dst.read() == data[:70000]
r, w = os.pipe(); c.sendall(b"spliced")
assert os.splice(a.fileno(), w, 100) == 7 and os.read(r, 100) == b"spliced"
# fstat/lseek/pread on kernel descriptors reach the kernel
st = os.fstat(a.fileno()); assert stat.S_ISSOCK(st.st_mode), oct(st.st_mode)
for call in (lambda: os.lseek(a.fileno(), 0, 0), lambda: os.pread(a.fileno(), 1, 0)):
    try: call(); raise SystemExit("no ESPIPE")
    except OSError as e: assert e.errno == 29, e
print("sendfile sha256", hashlib.sha256(got).hexdigest()[:16], "ok")
"#;
    run_python(script, "ok");
}

#[testkit::needs(python3)]
#[test]
fn ppoll_and_pselect_over_host_and_kernel_descriptors_with_a_sigmask() {
    let script = r#"
import ctypes, os, signal, socket, threading, time
libc = ctypes.CDLL(None, use_errno=True)
class Pfd(ctypes.Structure): _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]
class Ts(ctypes.Structure): _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
r, w = os.pipe()
fds = (Pfd * 2)(Pfd(a.fileno(), 1, 0), Pfd(r, 1, 0))
t = time.monotonic()
assert libc.ppoll(fds, 2, ctypes.byref(Ts(0, 200_000_000)), None) == 0
assert time.monotonic() - t >= 0.19
threading.Timer(0.1, lambda: c.send(b"k")).start()
assert libc.ppoll(fds, 2, ctypes.byref(Ts(5, 0)), None) == 1 and fds[0].revents == 1 and fds[1].revents == 0
a.recv(1)
# SIGUSR1 blocked in the thread, unblocked only during the wait: it interrupts.
hits = []
signal.signal(signal.SIGUSR1, lambda *_: hits.append(1))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
empty = ctypes.create_string_buffer(128)
me = threading.get_ident()
threading.Timer(0.2, lambda: signal.pthread_kill(me, signal.SIGUSR1)).start()
n = libc.ppoll(fds, 2, ctypes.byref(Ts(5, 0)), empty); e = ctypes.get_errno()
assert n == -1 and e == 4, (n, e)                 # EINTR
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1]); time.sleep(0.01)
assert hits, "handler ran"
# pselect: the same over fd_sets
class FdSet(ctypes.Structure): _fields_ = [("b", ctypes.c_ulong * 16)]
def fdset(*fs):
    x = FdSet()
    for f in fs: x.b[f // 64] |= 1 << (f % 64)
    return x
def isset(x, f): return bool(x.b[f // 64] & (1 << (f % 64)))
rs = fdset(a.fileno(), r)
threading.Timer(0.1, lambda: os.write(w, b"h")).start()
n = libc.pselect(max(a.fileno(), r) + 1, ctypes.byref(rs), None, None, ctypes.byref(Ts(5, 0)), None)
assert n == 1 and isset(rs, r) and not isset(rs, a.fileno()), n
os.read(r, 1)
rs = fdset(a.fileno(), r); t = time.monotonic()
assert libc.pselect(max(a.fileno(), r) + 1, ctypes.byref(rs), None, None, ctypes.byref(Ts(0, 150_000_000)), empty) == 0
assert time.monotonic() - t >= 0.14
print("ppoll pselect ok")
"#;
    run_python(script, "ppoll pselect ok");
}
