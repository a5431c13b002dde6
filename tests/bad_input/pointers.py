# Hostile pointers in socket calls, one case per run (argv[1]); prints the
# errno name ("ok" on success). Without argv[1], lists the cases.
import ctypes, errno, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
for f in ("send", "recv", "writev", "sendmsg", "recvmsg", "sendto"):
    getattr(libc, f).restype = ctypes.c_ssize_t
for f in ("setsockopt", "getsockopt", "bind", "connect", "getsockname", "accept", "poll"):
    getattr(libc, f).restype = ctypes.c_int
V = ctypes.c_void_p
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept(); a.send(b"data"); fd = c.fileno()
import time; time.sleep(0.05)
class iovec(ctypes.Structure):
    _fields_ = [("base", V), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", V), ("namelen", ctypes.c_uint32), ("iov", V), ("iovlen", ctypes.c_size_t), ("control", V), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int)]
KERNEL_HALF = V(0xffff800000001000)
def hole():
    import mmap
    libc.mmap.restype = V; libc.mmap.argtypes = [V, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    p = libc.mmap(None, 4096, 3, 0x22, -1, 0); libc.munmap(V(p), 4096); return V(p)
def readonly():
    libc.mmap.restype = V; libc.mmap.argtypes = [V, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    return V(libc.mmap(None, 4096, 1, 0x22, -1, 0))
def half_hole(n):
    # n readable bytes followed by an unmapped hole of n bytes.
    libc.mmap.restype = V; libc.mmap.argtypes = [V, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    p = libc.mmap(None, 2 * n, 3, 0x22, -1, 0); ctypes.memset(p, 0x5a, n); libc.munmap(V(p + n), n); return V(p)
bad_iov = (iovec * 1)(iovec(None, 10))
cases = {
    "send NULL buffer": lambda: libc.send(fd, None, 10, 0),
    "recv into NULL": lambda: libc.recv(fd, None, 10, 0),
    "send buffer 0x10": lambda: libc.send(fd, V(0x10), 10, 0),
    "send kernel-half buffer": lambda: libc.send(fd, KERNEL_HALF, 10, 0),
    "bind NULL sockaddr": lambda: libc.bind(socket.socket().detach(), None, 16),
    "connect NULL sockaddr": lambda: libc.connect(socket.socket().detach(), None, 16),
    "setsockopt NULL optval": lambda: libc.setsockopt(fd, socket.SOL_SOCKET, socket.SO_RCVBUF, None, 4),
    "getsockopt NULL optlen": lambda: libc.getsockopt(fd, socket.SOL_SOCKET, socket.SO_RCVBUF, ctypes.create_string_buffer(4), None),
    "getsockname NULL": lambda: libc.getsockname(fd, None, None),
    "sendmsg NULL msghdr": lambda: libc.sendmsg(fd, None, 0),
    "writev iov at 0x8": lambda: libc.writev(fd, V(8), 1),
    "sendto NULL address len 16": lambda: libc.sendto(socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach(), ctypes.create_string_buffer(4), 4, 0, None, 16),
    "accept, bad addr and addrlen": lambda: (socket.create_connection(srv.getsockname()), libc.accept(srv.fileno(), V(0x20), V(0x20)))[1],
    "poll NULL fds, nfds 1": lambda: libc.poll(None, 1, 0),
    "send into an unmapped hole": lambda: libc.send(fd, hole(), 10, 0),
    "recv into an unmapped hole": lambda: libc.recv(fd, hole(), 10, 0),
    "recv into a read-only page": lambda: libc.recv(fd, readonly(), 10, 0),
    "writev iov array in a hole": lambda: libc.writev(fd, hole(), 1),
    "sendmsg msghdr in a hole": lambda: libc.sendmsg(fd, hole(), 0),
    "recvmsg iov base in a hole": lambda: libc.recvmsg(fd, ctypes.byref(msghdr(None, 0, ctypes.cast((iovec * 1)(iovec(hole(), 10)), V), 1, None, 0, 0)), 0),
    "getsockname into a hole": lambda: libc.getsockname(fd, hole(), ctypes.byref(ctypes.c_uint32(16))),
    # A short count or EFAULT, as the kernel copies in pieces (how many
    # bytes a piece holds differs a little from the host's).
    "send 64 KiB, its second half a hole: short": lambda: libc.send(fd, half_hole(32 << 10), 64 << 10, 0),
    "send 8 KiB, its second half a hole: short": lambda: libc.send(fd, half_hole(4 << 10), 8 << 10, 0),
    "sendmsg iov with NULL base": lambda: libc.sendmsg(fd, ctypes.byref(msghdr(None, 0, ctypes.cast(bad_iov, V), 1, None, 0, 0)), 0),
}
if len(sys.argv) < 2:
    print("\n".join(cases)); sys.exit(0)
ctypes.set_errno(0)
r = cases[sys.argv[1]]()
if sys.argv[1].endswith(": short") and r >= 0:
    asked = int(sys.argv[1].split()[1]) << 10
    print("short" if 0 < r < asked else "%d of %d" % (r, asked))
else:
    print("ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
