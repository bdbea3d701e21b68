/**
 * Does with the pipe ends it is sent what the parent asks on `ctl` (the message type), and
 * answers each request with a message of the same type: a relay and a holder for the pipe tests.
 */
import {
  type DataPipeConsumer,
  type DataPipeProducer,
  type Handle,
  parentChannels,
} from '../../../../src/index.js';

const COPY = 1; // handles [consumer, producer]: copy all, random chunk sizes, then close
const HOLD = 2; // handles: keep them, untouched
const DRAIN = 3; // read the held consumer to its end; answers the byte count
const CLOSE = 4; // close every held end
const WRITE = 5; // write data (a decimal byte count) to the held producer; answers 'ok' or the error code

const { ctl } = await parentChannels(['ctl']);
const held: Handle[] = [];
const text = (s: string) => new TextEncoder().encode(s);

async function copy(from: DataPipeConsumer, to: DataPipeProducer): Promise<void> {
  for (;;) {
    let chunk: Uint8Array;
    try {
      chunk = await from.read(1 + Math.floor(Math.random() * 100_000));
    } catch {
      break;
    }
    await to.writeAll(chunk);
  }
  from.close();
  to.close();
}

for await (const m of ctl) {
  let answer = '';
  if (m.type === COPY) {
    void copy(m.handles[0] as DataPipeConsumer, m.handles[1] as DataPipeProducer);
  } else if (m.type === HOLD) {
    held.push(...m.handles);
  } else if (m.type === DRAIN) {
    let n = 0;
    for await (const chunk of held[0] as DataPipeConsumer) n += chunk.byteLength;
    answer = String(n);
  } else if (m.type === CLOSE) {
    for (const h of held.splice(0)) h.close();
  } else if (m.type === WRITE) {
    const n = Number(new TextDecoder().decode(m.data));
    answer = await (held[0] as DataPipeProducer).writeAll(new Uint8Array(n).fill(7)).then(
      () => 'ok',
      (err: { code: string }) => err.code,
    );
  }
  await ctl.sendWait({ type: m.type, data: text(answer) });
}
for (const h of held) h.close();
ctl.close();
