// Node's child_process (libuv reaps children on SIGCHLD through its signal
// pipe) with a kernel TCP server open in the same loop, and a signal sent
// from a worker thread. Prints "ok node child_process".
'use strict';
const assert = require('assert');
const cp = require('child_process');
const net = require('net');
const { Worker } = require('worker_threads');

function run(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const p = cp.spawn(cmd, args);
    let out = Buffer.alloc(0);
    let err = '';
    p.stdout.on('data', (d) => { out = Buffer.concat([out, d]); });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ out, err, code, signal }));
    if (input !== undefined) p.stdin.end(input);
    else p.stdin.end();
  });
}

async function main() {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));

  let r = await run('sh', ['-c', 'echo out; echo err >&2; exit 3']);
  assert.deepStrictEqual([r.out.toString(), r.err, r.code], ['out\n', 'err\n', 3]);

  const data = require('crypto').randomBytes(300000);
  r = await run('cat', [], data);
  assert.ok(r.out.equals(data) && r.code === 0);

  const codes = await Promise.all([0, 1, 2, 3, 4].map((i) =>
    run('sh', ['-c', `sleep 0.0${i}; exit ${i}`]).then((x) => x.code)));
  assert.deepStrictEqual(codes, [0, 1, 2, 3, 4]);

  const out = await new Promise((resolve, reject) =>
    cp.exec('echo hi', (e, so) => (e ? reject(e) : resolve(so))));
  assert.strictEqual(out, 'hi\n');

  const sleeper = cp.spawn('sleep', ['30']);
  const exited = new Promise((resolve) => sleeper.on('exit', (c, s) => resolve(s)));
  sleeper.kill();
  assert.strictEqual(await exited, 'SIGTERM');

  // A signal sent to the process from another thread.
  const got = new Promise((resolve) => process.once('SIGUSR2', resolve));
  new Worker('process.kill(process.pid, "SIGUSR2")', { eval: true });
  await got;

  // TCP through the kernel still works in the same loop.
  const echoed = await new Promise((resolve, reject) => {
    const c = net.connect(server.address().port, '127.0.0.1', () => c.end('ping'));
    let buf = '';
    c.on('data', (d) => { buf += d; });
    c.on('end', () => resolve(buf));
    c.on('error', reject);
  });
  assert.strictEqual(echoed, 'ping');
  server.close();
}

const timer = setTimeout(() => { console.log('TIMEOUT'); process.exit(2); }, 60000);
main().then(() => { clearTimeout(timer); console.log('ok node child_process'); },
  (e) => { console.error(e); process.exit(1); });
