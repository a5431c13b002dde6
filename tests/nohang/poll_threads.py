"""Two threads polling one kernel socket, one for POLLIN, one for POLLOUT,
each together with a host pipe (a mixed wait), while a peer makes the
socket readable and writable in turn. A wake-up one waiter takes from the
other leaves that one asleep for good. Prints "ok poll threads"."""
import os
import select
import socket
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
a = socket.create_connection(srv.getsockname())
b, _ = srv.accept()
for s in (a, b):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
a.setblocking(False)
r, w = os.pipe()  # never written: keeps each poll a mixed one
got = [0, 0]


def waiter(event, step, want, index):
    p = select.poll()
    p.register(a, event)
    p.register(r, select.POLLIN)
    while got[index] < want:
        p.poll()
        try:
            got[index] += step()
        except BlockingIOError:
            pass


def peer():
    b.setblocking(False)
    sent = 0
    while got[0] < N or got[1] < N * 100:
        if sent < N:
            try:
                sent += b.send(b"y" * 7)
            except BlockingIOError:
                pass
        try:
            b.recv(65536)
        except BlockingIOError:
            pass
        time.sleep(0.0002)


threads = [
    threading.Thread(
        target=waiter, args=(select.POLLIN, lambda: len(a.recv(65536)), N, 0), daemon=True
    ),
    threading.Thread(
        target=waiter, args=(select.POLLOUT, lambda: a.send(b"x" * 100000), N * 100, 1), daemon=True
    ),
    threading.Thread(target=peer, daemon=True),
]
for t in threads:
    t.start()
t0 = time.time()
while threads[0].is_alive() or threads[1].is_alive():
    time.sleep(0.1)
    if time.time() - t0 > 30:
        print("stuck", got, [t.is_alive() for t in threads], flush=True)
        os._exit(1)
print("ok poll threads", flush=True)
