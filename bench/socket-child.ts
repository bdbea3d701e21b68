/**
 * The child side of bench/socket.bench.ts: receives (or echoes) what the parent sends over one
 * transport and prints `done` on stdout when it has `count` messages. argv: mode, count, address.
 */
import net from 'node:net';
import { Pull } from 'zeromq';
import { connect, parentChannels } from '../src/index.js';
import { threadCpuNs } from './stats.js';

const [mode, countText, address] = process.argv.slice(2) as [string, string, string];
const count = Number(countText);
// The CPU time of this thread from the first message (after start-up) to `done`, which
// bench/natural.bench.ts reports per message.
let cpu = Number.NaN;
const begin = () => {
  if (Number.isNaN(cpu)) cpu = threadCpuNs();
};
const done = () => process.stdout.write(`done ${threadCpuNs() - cpu}\n`);
const LIMITS = { capacity: 8192, capacityBytes: 8 * 1024 * 1024, maxMessageBytes: 65536 };

if (mode === 'spawned') {
  const { data } = await parentChannels(LIMITS);
  begin();
  let n = 0;
  while (n < count && data !== undefined) n += (await data.recvBatch()).length;
  done();
  data?.close();
} else if (mode === 'ftl' || mode === 'ftl-echo') {
  const ch = await connect({ path: address }, LIMITS);
  begin();
  let n = 0;
  while (n < count) {
    for (const m of await ch.recvBatch()) {
      n++;
      if (mode === 'ftl-echo') await ch.sendWait(m);
    }
  }
  done();
  for await (const _ of ch) {
    // Until the parent closes.
  }
  ch.close();
} else if (mode === 'cp' || mode === 'cp-echo') {
  let n = 0;
  process.on('message', (m) => {
    begin();
    if (mode === 'cp-echo') process.send?.(m);
    else if (++n === count) done();
  });
  process.on('disconnect', () => process.exit(0));
} else if (mode === 'zmq') {
  const pull = new Pull();
  pull.connect(address);
  let n = 0;
  for await (const [_msg] of pull) {
    begin();
    if (++n === count) break;
  }
  done();
  pull.close();
} else if (mode === 'frames' || mode === 'bytes') {
  // A hand-written length-prefixed protocol: u32 length, then the payload; each message becomes
  // a view, as a real receiver would hand on. 'bytes' just counts bytes.
  const socket = net.connect(address);
  let n = 0;
  let rest: Buffer | undefined;
  socket.on('data', (chunk: Buffer) => {
    begin();
    if (mode === 'bytes') {
      n += chunk.length;
      if (n >= count) done();
      return;
    }
    let buf = rest === undefined ? chunk : Buffer.concat([rest, chunk]);
    let at = 0;
    for (;;) {
      if (buf.length - at < 4) break;
      const len = buf.readUInt32LE(at);
      if (buf.length - at - 4 < len) break;
      const view = new Uint8Array(buf.buffer, buf.byteOffset + at + 4, len);
      if (view.byteLength === len) n++;
      at += 4 + len;
    }
    rest = at < buf.length ? buf.subarray(at) : undefined;
    buf = chunk;
    if (n >= count) {
      done();
      socket.end();
    }
  });
}
