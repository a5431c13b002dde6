"""Sending to a peer that goes away mid-transfer must fail at once (EPIPE,
ECONNRESET), as on the host, never wait or spin: asyncio's loop.sendfile,
sock_sendfile and sock_sendall, transport writes, blocking os.sendfile,
and os.splice from a host pipe. Prints one line per case and "ok
sendfile"; with argv[1] == "sigpipe", dies of SIGPIPE as the host's
sendfile makes a program that does not ignore it."""
import asyncio
import errno
import os
import signal
import socket
import struct
import sys
import tempfile
import threading

SIZE = 32 << 20
src = tempfile.TemporaryFile()
src.write(os.urandom(1 << 20) * (SIZE >> 20))
src.flush()


def outcome(e):
    gone = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN)
    if isinstance(e, ConnectionError) or getattr(e, "errno", None) in gone:
        return "peer gone"
    return f"unexpected {type(e).__name__}: {e}"


def pair():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    peer.connect(ls.getsockname())
    me, _ = ls.accept()
    ls.close()
    return me, peer


def go_away(peer, how):
    """The peer takes a little, then closes (with unread data: RST) or
    resets (SO_LINGER 0)."""
    peer.recv(4096)
    if how == "reset":
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()


async def case(name, how, fn):
    me, peer = pair()
    me.setblocking(False)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, go_away, peer, how)
    try:
        await asyncio.wait_for(fn(loop, me), 20)
        result = "completed (the peer took everything?)"
    except asyncio.TimeoutError:
        result = "TIMEOUT"
    except Exception as e:  # noqa: BLE001 - reported, compared with the host
        result = outcome(e)
    me.close()
    print(f"{name} {how}: {result}", flush=True)


async def with_transport(loop, me, body):
    r, w = await asyncio.open_connection(sock=me)
    try:
        await body(loop, w)
    finally:
        w.close()


async def loop_sendfile(loop, me):
    src.seek(0)
    await with_transport(loop, me, lambda loop, w: loop.sendfile(w.transport, src))


async def sock_sendfile(loop, me):
    src.seek(0)
    await loop.sock_sendfile(me, src)


async def sock_sendall(loop, me):
    await loop.sock_sendall(me, b"z" * SIZE)


async def transport_write(loop, me):
    async def body(loop, w):
        for _ in range(SIZE >> 16):
            w.write(b"w" * 65536)
            await w.drain()

    await with_transport(loop, me, body)


async def main():
    for how in ("close", "reset"):
        await case("loop.sendfile", how, loop_sendfile)
        await case("sock_sendfile", how, sock_sendfile)
        await case("sock_sendall", how, sock_sendall)
        await case("transport.write", how, transport_write)


def blocking(name, how, send):
    me, peer = pair()
    threading.Timer(0.05, go_away, (peer, how)).start()
    try:
        while send(me):
            pass
        result = "completed (the peer took everything?)"
    except OSError as e:
        result = outcome(e)
    me.close()
    print(f"{name} {how}: {result}", flush=True)


def sendfile_all(me):
    off = 0
    while off < SIZE:
        off += os.sendfile(me.fileno(), src.fileno(), off, SIZE - off)
    return False


def splice_all(me):
    """A host pipe (unseekable) into a non-blocking kernel socket."""
    me.setblocking(False)
    r, w = os.pipe()
    chunk = b"s" * 65536
    sent = 0
    try:
        while sent < SIZE:
            os.write(w, chunk)
            left = len(chunk)
            while left:
                try:
                    left -= os.splice(r, me.fileno(), left)
                except BlockingIOError:
                    threading.Event().wait(0.001)
            sent += len(chunk)
    finally:
        os.close(r)
        os.close(w)
    return False


if sys.argv[1:] == ["sigpipe"]:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    me, peer = pair()
    peer.close()  # nothing unread: FIN, then RST to our data, then EPIPE
    off = 0
    while True:
        try:
            off += os.sendfile(me.fileno(), src.fileno(), off, 1 << 16)
        except ConnectionResetError:
            pass
        threading.Event().wait(0.001)

asyncio.run(main())
for how in ("close", "reset"):
    blocking("os.sendfile", how, sendfile_all)
    blocking("os.splice", how, splice_all)
print("ok sendfile")
