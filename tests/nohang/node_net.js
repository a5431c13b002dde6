// Node's net over kernel TCP with peers that go away mid-transfer (close
// with unread data, reset), a file piped to such a peer, and round trips.
// Each writer must see the connection end at once. Prints "ok node net".
'use strict';
const assert = require('assert');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const BIG = 32 << 20;

// A server that sends `send(socket)` to one client, which takes a little
// and then goes away as `how` says; resolves with how the sender ended.
function gone(how, send) {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => {
      let ended = null;
      const finish = (what) => {
        if (!ended) {
          ended = what;
          server.close();
          resolve(what);
        }
      };
      s.on('error', (e) => finish(['EPIPE', 'ECONNRESET'].includes(e.code) ? 'peer gone' : e.code));
      s.on('close', () => finish('peer gone'));
      send(s, finish);
    });
    server.listen(0, '127.0.0.1', () => {
      const c = net.connect(server.address().port, '127.0.0.1');
      c.once('data', () => {
        c.pause();
        if (how === 'reset') c.resetAndDestroy();
        else c.destroy();
      });
      c.on('error', () => {});
    });
    server.on('error', reject);
  });
}

async function main() {
  const file = path.join(os.tmpdir(), `nohang-node-${process.pid}`);
  fs.writeFileSync(file, Buffer.alloc(BIG, 7));
  try {
    for (const how of ['close', 'reset']) {
      assert.strictEqual(await gone(how, (s) => s.write(Buffer.alloc(BIG, 1))), 'peer gone');
      assert.strictEqual(await gone(how, (s) => fs.createReadStream(file).pipe(s)), 'peer gone');
    }
  } finally {
    fs.unlinkSync(file);
  }

  // Round trips through an echo server.
  const server = net.createServer((s) => s.pipe(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  await new Promise((resolve, reject) => {
    const c = net.connect(server.address().port, '127.0.0.1');
    let n = 0;
    c.on('connect', () => c.write('x'));
    c.on('data', () => {
      if (++n === 1000) { c.end(); resolve(); } else c.write('x');
    });
    c.on('error', reject);
  });
  server.close();
}

const timer = setTimeout(() => { console.log('TIMEOUT'); process.exit(2); }, 60000);
main().then(() => { clearTimeout(timer); console.log('ok node net'); },
  (e) => { console.error(e); process.exit(1); });
