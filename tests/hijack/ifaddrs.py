# Walks getifaddrs() with ctypes (Python has no binding of its own) and
# prints one line per entry: "NAME FAMILY ADDR NETMASK OTHER FLAGS", then
# frees the list with freeifaddrs. Also prints socket.if_nameindex().
import ctypes, socket

class sockaddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 26)]

class ifaddrs(ctypes.Structure):
    pass
ifaddrs._fields_ = [
    ("next", ctypes.POINTER(ifaddrs)), ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint), ("addr", ctypes.POINTER(sockaddr)),
    ("netmask", ctypes.POINTER(sockaddr)), ("ifu", ctypes.POINTER(sockaddr)),
    ("data", ctypes.c_void_p)]

def show(p):
    if not p:
        return "-"
    sa = p.contents
    raw = bytes(sa.data)
    if sa.family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[2:6])
    if sa.family == socket.AF_INET6:
        scope = int.from_bytes(raw[22:26], "little")
        a = socket.inet_ntop(socket.AF_INET6, raw[6:22])
        return a + ("%%%d" % scope if scope else "")
    if sa.family == socket.AF_PACKET:
        ifindex = int.from_bytes(raw[2:6], "little")
        halen = raw[9]
        return "ll%d:%s" % (ifindex, ":".join("%02x" % b for b in raw[10:10 + halen]))
    return "family%d" % sa.family

libc = ctypes.CDLL(None, use_errno=True)
head = ctypes.POINTER(ifaddrs)()
if libc.getifaddrs(ctypes.byref(head)) != 0:
    raise SystemExit("getifaddrs: errno %d" % ctypes.get_errno())
p = head
while p:
    e = p.contents
    fam = e.addr.contents.family if e.addr else 0
    print(e.name.decode(), fam, show(e.addr), show(e.netmask), show(e.ifu),
          hex(e.flags), "stats" if e.data else "-")
    p = e.next
libc.freeifaddrs(head)
print("if_nameindex", socket.if_nameindex())
