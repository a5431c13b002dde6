# TCP request/response: a one-byte request, a one-byte answer, N times.
#   rr.py server ADDR PORT      answers every connection, prints "ready"
#   rr.py client ADDR PORT N    prints "rr N round trips, mean X us"
import socket, sys, threading, time

def serve(conn):
    with conn:
        while True:
            b = conn.recv(1)
            if not b:
                return
            conn.sendall(b)

def server(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(8)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(c,), daemon=True).start()

def client(addr, port, n):
    c = socket.create_connection((addr, port), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter()
    for i in range(n):
        c.sendall(b"x")
        if c.recv(1) != b"x":
            sys.exit("rr: short answer at round trip %d" % i)
    dt = time.perf_counter() - t0
    c.close()
    print("rr %d round trips, mean %.1f us" % (n, dt / n * 1e6))

if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
