# Hostile socket arguments: prints a JSON object, case -> errno name
# ("ok" on success). Run on the host and under the hijack; they must agree.
import ctypes, errno, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(f, *a):
    ctypes.set_errno(0)
    r = f(*a)
    e = ctypes.get_errno()
    return "ok" if r >= 0 else errno.errorcode.get(e, str(e))
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.c_void_p),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int)]
for f in ("send", "recv", "sendto", "writev", "readv", "sendmsg", "recvmsg", "write", "read"):
    getattr(libc, f).restype = ctypes.c_ssize_t
for f in ("setsockopt", "getsockopt", "bind", "connect", "accept", "listen", "getsockname", "shutdown", "close", "poll", "fcntl", "ioctl", "socket"):
    getattr(libc, f).restype = ctypes.c_int
keep = []
def tcp():
    s = socket.socket(); keep.append(s); return s.fileno()
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
fd = c.fileno()
buf = ctypes.create_string_buffer(64)
iov = (iovec * 2000)(*[iovec(ctypes.cast(buf, ctypes.c_void_p), 1)] * 2000)
closed = socket.socket(); cfd = closed.fileno(); closed.close()
res = {}
fds_before = len(os.listdir("/proc/self/fd"))
res["writev iovcnt 1025"] = call(libc.writev, fd, iov, 1025)
res["writev iovcnt -1"] = call(libc.writev, fd, iov, -1)
res["readv iovcnt 0x7fffffff"] = call(libc.readv, fd, iov, 0x7fffffff)
m = msghdr(None, 0, ctypes.cast(iov, ctypes.c_void_p), 1 << 20, None, 0, 0)
res["sendmsg iovlen 1<<20"] = call(libc.sendmsg, fd, ctypes.byref(m), 0)
m2 = msghdr(None, 0, ctypes.cast(iov, ctypes.c_void_p), 1, None, 1 << 30, 0)
res["sendmsg controllen 1<<30, control NULL"] = call(libc.sendmsg, fd, ctypes.byref(m2), 0)
res["send MSG_OOB on udp"] = call(libc.send, u.fileno(), buf, 1, socket.MSG_OOB)
res["send flags 0x7fff0000 (unknown bits)"] = call(libc.send, fd, buf, 1, 0x7fff0000)
res["recv huge length, nonblocking, no data"] = call(libc.recv, fd, buf, ctypes.c_size_t(-1), socket.MSG_DONTWAIT)
res["send length -1 nonblocking"] = call(libc.send, u.fileno(), buf, ctypes.c_size_t(-1), 0)
res["sendto sockaddr len 1"] = call(libc.sendto, u.fileno(), buf, 1, 0, buf, 1)
res["bind sockaddr len 1"] = call(libc.bind, u.fileno(), buf, 1)
res["bind sockaddr len 4096"] = call(libc.bind, tcp(), ctypes.create_string_buffer(b"\x02\x00" + b"\x00" * 4094), 4096)
res["connect sockaddr len 0"] = call(libc.connect, tcp(), buf, 0)
res["connect family 4242"] = call(libc.connect, tcp(), ctypes.create_string_buffer(b"\x92\x10" + b"\x00" * 14), 16)
res["setsockopt optlen 1<<30"] = call(libc.setsockopt, fd, socket.SOL_SOCKET, socket.SO_RCVBUF, buf, 1 << 30)
res["setsockopt optlen -1"] = call(libc.setsockopt, fd, socket.SOL_SOCKET, socket.SO_RCVBUF, buf, -1)
res["setsockopt optlen 1 (short int)"] = call(libc.setsockopt, fd, socket.SOL_SOCKET, socket.SO_RCVBUF, buf, 1)
res["setsockopt level 9999"] = call(libc.setsockopt, fd, 9999, 1, buf, 4)
res["setsockopt name 9999"] = call(libc.setsockopt, fd, socket.SOL_SOCKET, 9999, buf, 4)
ln = ctypes.c_uint32(-1 & 0xffffffff)
res["getsockopt optlen -1"] = call(libc.getsockopt, fd, socket.SOL_SOCKET, socket.SO_RCVBUF, buf, ctypes.byref(ctypes.c_int32(-1)))
res["socket domain 9999"] = "ok" if libc.socket(9999, 1, 0) >= 0 else errno.errorcode[ctypes.get_errno()]
res["socket type 9999"] = "ok" if libc.socket(2, 9999, 0) >= 0 else errno.errorcode[ctypes.get_errno()]
res["socket protocol 9999"] = "ok" if libc.socket(2, 1, 9999) >= 0 else errno.errorcode[ctypes.get_errno()]
res["listen on udp"] = call(libc.listen, u.fileno(), 5)
res["accept on unconnected tcp"] = call(libc.accept, tcp(), None, None)
res["shutdown how 42"] = call(libc.shutdown, fd, 42)
res["send on never-open fd 987654"] = call(libc.send, 987654, buf, 1, 0)
res["send on fd -1"] = call(libc.send, -1, buf, 1, 0)
res["getsockname on a regular file"] = call(libc.getsockname, os.open("/dev/null", os.O_RDONLY), buf, ctypes.byref(ctypes.c_uint32(16)))
res["fcntl cmd 9999"] = call(libc.fcntl, fd, 9999, 0)
res["ioctl request 0xdeadbeef"] = call(libc.ioctl, fd, 0xdeadbeef, 0)
res["setsockopt SO_RCVTIMEO tv_usec 2e6"] = call(libc.setsockopt, fd, socket.SOL_SOCKET, socket.SO_RCVTIMEO, ctypes.create_string_buffer(bytes(8) + (2000000).to_bytes(8, "little")), 16)
res["poll nfds 1<<20"] = call(libc.poll, buf, 1 << 20, 0)
import select
try:
    select.select([987654], [], [], 0); res["select fd 987654"] = "ok"
except (OSError, ValueError) as e:
    res["select fd 987654"] = type(e).__name__ + ":" + str(getattr(e, "errno", ""))
res["host fds created by the bad calls"] = str(len(os.listdir("/proc/self/fd")) - fds_before - len(keep) - 1)
print(json.dumps(res))
