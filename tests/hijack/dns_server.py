# A tiny authoritative DNS server for the hijack tests (UDP and TCP on
# ADDR:53, run inside the test's network namespace). Names:
#   web.test    A 192.168.113.1, no AAAA
#   both.test   A 192.168.113.1 and AAAA fd00::1
#   alias.test  CNAME web.test (+ its A)
#   big.test    over UDP: TC set, no answer; over TCP: A 192.168.113.7
#   PTR 1.113.168.192.in-addr.arpa -> web.test
# anything else NXDOMAIN. Before each UDP answer a reply with a wrong id is
# sent, which the client must ignore.
import socket, struct, sys, threading

ADDR = sys.argv[1]

def name_at(msg, pos):
    labels = []
    while msg[pos]:
        n = msg[pos]
        labels.append(msg[pos + 1:pos + 1 + n].decode())
        pos += 1 + n
    return ".".join(labels), pos + 1

def enc(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"

def rr(name, rtype, data):
    return enc(name) + struct.pack(">HHIH", rtype, 1, 60, len(data)) + data

def answer(q, tcp):
    qid, flags = struct.unpack(">HH", q[:4])
    qname, end = name_at(q, 12)
    qtype, = struct.unpack(">H", q[end:end + 2])
    question = q[12:end + 4]
    lname = qname.lower()
    ans, rcode, tc = [], 0, False
    a = lambda ip: socket.inet_pton(socket.AF_INET, ip)
    if lname == "web.test":
        if qtype == 1: ans.append(rr(qname, 1, a("192.168.113.1")))
    elif lname == "both.test":
        if qtype == 1: ans.append(rr(qname, 1, a("192.168.113.1")))
        if qtype == 28: ans.append(rr(qname, 28, socket.inet_pton(socket.AF_INET6, "fd00::1")))
    elif lname == "alias.test":
        ans.append(rr(qname, 5, enc("web.test")))
        if qtype == 1: ans.append(rr("web.test", 1, a("192.168.113.1")))
    elif lname == "big.test":
        if not tcp: tc = True
        elif qtype == 1: ans.append(rr(qname, 1, a("192.168.113.7")))
    elif lname == "1.113.168.192.in-addr.arpa" and qtype == 12:
        ans.append(rr(qname, 12, enc("web.test")))
    else:
        rcode = 3
    rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode | (0x0200 if tc else 0)
    return struct.pack(">HHHHHH", qid, rflags, 1, len(ans), 0, 0) + question + b"".join(ans)

def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ADDR, 53))
    while True:
        q, peer = s.recvfrom(4096)
        r = answer(q, False)
        s.sendto(struct.pack(">H", (r[0] << 8 | r[1]) ^ 0x5555) + r[2:], peer)  # wrong id
        s.sendto(r, peer)

def tcp():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ADDR, 53)); s.listen(8)
    while True:
        c, _ = s.accept()
        n, = struct.unpack(">H", c.recv(2, socket.MSG_WAITALL))
        r = answer(c.recv(n, socket.MSG_WAITALL), True)
        c.sendall(struct.pack(">H", len(r)) + r); c.close()

threading.Thread(target=tcp, daemon=True).start()
print("ready", flush=True)
udp()
