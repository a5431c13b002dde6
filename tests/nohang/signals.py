"""Signals while threads wait, in kernel calls and in mixed waits: each
part must end at once, as on the host. Prints "ok signals"."""
import asyncio
import os
import select
import signal
import socket
import threading
import time


class Stop(Exception):
    pass


def raise_stop(*_):
    raise Stop


def later(delay, fn):
    t = threading.Timer(delay, fn)
    t.start()
    return t


# 1. asyncio: a handler added with loop.add_signal_handler, the signal sent
# from other threads (kill to the process, pthread_kill to the loop's
# thread), while a kernel TCP server sits in the loop.
async def loop_signals():
    loop = asyncio.get_running_loop()
    srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    got = asyncio.Queue()
    loop.add_signal_handler(signal.SIGUSR1, got.put_nowait, 1)
    main = threading.main_thread().ident
    for i in range(20):
        if i % 2:
            later(0.001, lambda: os.kill(os.getpid(), signal.SIGUSR1))
        else:
            later(0.001, lambda: signal.pthread_kill(main, signal.SIGUSR1))
        await asyncio.wait_for(got.get(), 10)
    loop.remove_signal_handler(signal.SIGUSR1)
    srv.close()
    await srv.wait_closed()


asyncio.run(loop_signals())

# 2. The main thread blocked in a kernel accept(): a signal from another
# thread runs the handler, whose exception ends the call.
signal.signal(signal.SIGUSR1, raise_stop)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen()
later(0.2, lambda: os.kill(os.getpid(), signal.SIGUSR1))
try:
    ls.accept()
    raise AssertionError("accept returned")
except Stop:
    pass

# 3. The same in a mixed poll (a kernel socket and a host pipe), and with
# a timer signal (setitimer) in a mixed select.
r, w = os.pipe()
p = select.poll()
p.register(ls, select.POLLIN)
p.register(r, select.POLLIN)
later(0.2, lambda: os.kill(os.getpid(), signal.SIGUSR1))
try:
    p.poll()
    raise AssertionError("poll returned")
except Stop:
    pass
signal.signal(signal.SIGALRM, raise_stop)
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    select.select([ls, r], [], [])
    raise AssertionError("select returned")
except Stop:
    pass

# 4. A worker thread blocked in a kernel recv(), signalled again and again
# (its C handler interrupts the call, Python retries it), then given data.
a = socket.create_connection(ls.getsockname())
b, _ = ls.accept()
signal.signal(signal.SIGUSR1, lambda *_: None)
out = []
worker = threading.Thread(target=lambda: out.append(b.recv(10)))
worker.start()
for _ in range(50):
    signal.pthread_kill(worker.ident, signal.SIGUSR1)
    time.sleep(0.002)
a.sendall(b"hello")
worker.join(10)
assert out == [b"hello"], out

# 5. Blocking kernel ping-pong between two threads under a storm of
# signals to the process.
stop = threading.Event()


def storm():
    while not stop.is_set():
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.001)


def pong():
    for _ in range(300):
        b.sendall(b.recv(1))


t1 = threading.Thread(target=storm)
t2 = threading.Thread(target=pong)
t1.start()
t2.start()
for _ in range(300):
    a.sendall(b"x")
    assert a.recv(1) == b"x"
stop.set()
t1.join()
t2.join(10)
assert not t2.is_alive()
print("ok signals")
