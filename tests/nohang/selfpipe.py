"""The classic self-pipe event loop without asyncio, on the selector named
by argv[1] (epoll, poll, select): SIGCHLD's C handler writes to a
socketpair (signal.set_wakeup_fd), the loop reads children's pipes to EOF
and reaps them with waitpid(WNOHANG) when woken, while a kernel TCP
listener sits in the same selector (so the wait mixes host and kernel
descriptors). Prints "ok self-pipe SELECTOR"."""
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

kind = sys.argv[1]
sel = {
    "epoll": selectors.EpollSelector,
    "poll": selectors.PollSelector,
    "select": selectors.SelectSelector,
}[kind]()

rsock, wsock = socket.socketpair()
for s in (rsock, wsock):
    s.setblocking(False)
signal.set_wakeup_fd(wsock.fileno())
signal.signal(signal.SIGCHLD, lambda *a: None)  # the C handler does the work

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
listener.setblocking(False)
sel.register(listener, selectors.EVENT_READ, "listener")
sel.register(rsock, selectors.EVENT_READ, "wakeup")

children = {}
outputs = {}
# Kept alive: a dropped Popen is reaped by subprocess's own clean-up at the
# next Popen, and waitpid(-1) here would never see it.
procs = []
for i in range(4):
    p = subprocess.Popen(
        ["sh", "-c", f"sleep 0.0{i}; echo child {i}; exit {i}"], stdout=subprocess.PIPE
    )
    procs.append(p)
    os.set_blocking(p.stdout.fileno(), False)
    sel.register(p.stdout, selectors.EVENT_READ, ("pipe", p.pid))
    children[p.pid] = None
    outputs[p.pid] = b""

deadline = time.monotonic() + 60
open_pipes = len(children)
while open_pipes or any(v is None for v in children.values()):
    assert time.monotonic() < deadline, "gave up waiting"
    for key, _ in sel.select():
        if key.data == "wakeup":
            rsock.recv(4096)
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                children[pid] = os.waitstatus_to_exitcode(status)
                for p in procs:
                    if p.pid == pid:
                        p.returncode = children[pid]
        elif key.data == "listener":
            raise AssertionError("nobody connects")
        else:
            pid = key.data[1]
            chunk = os.read(key.fileobj.fileno(), 4096)
            if chunk:
                outputs[pid] += chunk
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                open_pipes -= 1

got = sorted((outputs[pid], rc) for pid, rc in children.items())
want = [(f"child {i}\n".encode(), i) for i in range(4)]
assert got == want, got
print(f"ok self-pipe {kind}")
