"""asyncio subprocesses under one child watcher (argv[1]): read a child's
pipes to EOF, communicate, many children at once, a killed child, while a
kernel TCP echo runs in the same loop. Prints "ok WATCHER" (or "skip
WATCHER: why"); any hang is the driver's watchdog's to catch."""
import asyncio
import os
import sys
import warnings

warnings.simplefilter("ignore", DeprecationWarning)
name = sys.argv[1]
cls = getattr(asyncio, name, None)
if cls is None:
    print(f"skip {name}: not in this Python")
    sys.exit(0)
if name == "PidfdChildWatcher" and not hasattr(os, "pidfd_open"):
    print(f"skip {name}: no os.pidfd_open")
    sys.exit(0)
PIPE = asyncio.subprocess.PIPE


async def echo_server():
    async def handle(r, w):
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def main():
    srv = await echo_server()
    port = srv.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port)

    # A child's stdout and stderr read to EOF, then its status.
    p = await asyncio.create_subprocess_exec(
        "sh", "-c", "echo out; echo err >&2; exit 3", stdout=PIPE, stderr=PIPE
    )
    out = await p.stdout.read()
    err = await p.stderr.read()
    rc = await p.wait()
    assert (out, err, rc) == (b"out\n", b"err\n", 3), (out, err, rc)

    # communicate(): stdin written while stdout is read, then the status.
    data = os.urandom(300_000)
    p = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
    out, _ = await p.communicate(data)
    assert out == data and p.returncode == 0, (len(out), p.returncode)

    # Several children exiting in their own order, and TCP meanwhile.
    ps = [
        await asyncio.create_subprocess_exec("sh", "-c", f"sleep 0.0{i}; exit {i}")
        for i in range(5)
    ]
    w.write(b"ping" * 1000)
    rcs = await asyncio.gather(*(p.wait() for p in ps))
    assert rcs == list(range(5)), rcs
    assert await r.readexactly(4000) == b"ping" * 1000

    # A child killed by a signal.
    p = await asyncio.create_subprocess_exec("sleep", "30")
    p.terminate()
    assert await p.wait() == -15

    # A child whose output outlives it (its grandchild holds the pipe).
    p = await asyncio.create_subprocess_exec(
        "sh", "-c", "(sleep 0.2; echo late) & exit 0", stdout=PIPE
    )
    assert await p.wait() == 0
    assert await p.stdout.read() == b"late\n"

    w.close()
    srv.close()
    await srv.wait_closed()


asyncio.set_child_watcher(cls())
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)  # attaches the watcher (main thread)
asyncio.get_child_watcher().attach_loop(loop)
try:
    loop.run_until_complete(asyncio.wait_for(main(), 60))
finally:
    asyncio.get_child_watcher().close()
    loop.close()
print(f"ok {name}")
