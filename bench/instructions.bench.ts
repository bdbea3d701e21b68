/**
 * Instructions per message on the channel core, counted by valgrind's callgrind: unlike time, the
 * count does not move with the machine's load, so two checkouts can be compared on a busy machine.
 * One thread; each step sends `--batch` messages of `--bytes` and then takes them. `--path`:
 * `local` (a local pair, capacity 1,024; `send` + `tryRecv`), `shared` (the same pair with one end
 * exported and imported again in this thread: the main thread's side of a worker channel and the
 * worker's side, over the shared ring), `shared-view` (that, receiving with `tryRecvView`,
 * sending with `sendBatch`), or `floor` (the hand-written ring of bench/ring.ts: copy in, copy out,
 * indexes published per step). The figure is (count at n − count at 0) / n, so loading Node and
 * the package cancels out; `--runs` repeats each count and the median is taken. Cross-thread
 * costs (cache lines moving, wake-ups) are not in it: bench/natural.bench.ts measures those.
 *
 * Run: npm run build && node dist/bench/instructions.bench.js [--n=1000000] [--bytes=16]
 * [--runs=1] [--path=local|shared|shared-view|floor] [--batch=1]. Compare checkouts by running it
 * in each. Needs `valgrind` (Debian's package).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Channel, exportEndpoint, importEndpoint, type OutgoingMessage } from '../src/index.js';
import { RING_SLOTS, ringSlot } from './ring.js';
import { median, range } from './stats.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1000000' },
    bytes: { type: 'string', default: '16' },
    runs: { type: 'string', default: '1' },
    path: { type: 'string', default: 'local' },
    batch: { type: 'string', default: '1' },
    step: { type: 'string' },
  },
});

const batch = Number(values.batch);

/** The hand-written ring in one thread: each step copies `batch` messages in, then out. */
function floorSteps(steps: number, size: number): void {
  const slot = ringSlot(size);
  const ring = new SharedArrayBuffer(8 + RING_SLOTS * slot);
  const index = new Int32Array(ring, 0, 2);
  const bytes = new Uint8Array(ring, 8);
  const view = new DataView(ring, 8);
  const data = new Uint8Array(size).fill(7);
  const scratch = new Uint8Array(slot);
  let tail = 0;
  let head = 0;
  for (let i = steps; i > 0; i--) {
    for (let k = 0; k < batch; k++, tail++) {
      const off = (tail % RING_SLOTS) * slot;
      view.setUint32(off, size, true);
      bytes.set(data, off + 4);
    }
    Atomics.store(index, 1, tail);
    for (; head < tail; head++) {
      const off = (head % RING_SLOTS) * slot;
      const len = view.getUint32(off, true);
      scratch.set(bytes.subarray(off + 4, off + 4 + len));
    }
    Atomics.store(index, 0, head);
  }
}

if (values.step !== undefined) {
  const steps = Number(values.step);
  const size = Number(values.bytes);
  if (values.path === 'floor') floorSteps(steps, size);
  else {
    let [a, b] = Channel.pair({ capacity: 1024 });
    if (values.path !== 'local') b = importEndpoint(exportEndpoint(b));
    const message: OutgoingMessage = { type: 1, data: new Uint8Array(size) };
    const messages = new Array<OutgoingMessage>(batch).fill(message);
    if (values.path === 'shared-view') {
      for (let i = steps; i > 0; i--) {
        a.sendBatch(messages);
        for (let k = 0; k < batch; k++) b.tryRecvView();
      }
    } else {
      for (let i = steps; i > 0; i--) {
        for (let k = 0; k < batch; k++) a.send(message);
        for (let k = 0; k < batch; k++) b.tryRecv();
      }
    }
    a.close();
    b.close();
  }
} else {
  const n = Number(values.n);
  const runs = Number(values.runs);
  /** Instructions of one process making `steps` steps, from callgrind's summary on stderr. */
  const count = (steps: number): number => {
    const run = spawnSync(
      'valgrind',
      [
        '--tool=callgrind',
        '--callgrind-out-file=/dev/null',
        process.execPath,
        '--predictable',
        fileURLToPath(import.meta.url),
        `--step=${steps}`,
        `--bytes=${values.bytes}`,
        `--path=${values.path}`,
        `--batch=${batch}`,
      ],
      { encoding: 'utf8' },
    );
    const collected = /Collected : (\d+)/.exec(run.stderr ?? '');
    if (run.status !== 0 || collected === null) {
      throw new Error(`valgrind failed (status ${run.status}): ${run.error ?? run.stderr}`);
    }
    return Number(collected[1]);
  };
  const perMessage: number[] = [];
  for (let r = 0; r < runs; r++) perMessage.push((count(n) - count(0)) / (n * batch));
  const show = (x: number) => x.toFixed(0);
  console.log(
    `${values.path}, ${values.bytes} B, ${n} steps of ${batch}: ${show(median(perMessage))} instructions a message (${range(perMessage, show)}, ${runs} run(s))`,
  );
}
