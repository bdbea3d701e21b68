/**
 * Instructions per message on the channel core, counted by valgrind's callgrind: unlike time, the
 * count does not move with the machine's load, so two checkouts can be compared on a busy machine.
 * A local pair (capacity 1,024) in one thread; each step sends one message of `--bytes` and takes
 * it with `tryRecv`. The figure is (count at n − count at 0) / n, so loading Node and the package
 * cancels out; `--runs` repeats each count and the median is taken.
 *
 * Run: npm run build && node dist/bench/instructions.bench.js [--n=1000000] [--bytes=16]
 * [--runs=1]. Compare checkouts by running it in each. Needs `valgrind` (Debian's package).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Channel } from '../src/index.js';
import { median, range } from './stats.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1000000' },
    bytes: { type: 'string', default: '16' },
    runs: { type: 'string', default: '1' },
    step: { type: 'string' },
  },
});

if (values.step !== undefined) {
  const [a, b] = Channel.pair({ capacity: 1024 });
  const data = new Uint8Array(Number(values.bytes));
  for (let i = Number(values.step); i > 0; i--) {
    a.send({ type: 1, data });
    b.tryRecv();
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
  for (let r = 0; r < runs; r++) perMessage.push((count(n) - count(0)) / n);
  const show = (x: number) => x.toFixed(0);
  console.log(
    `local pair, send + tryRecv, ${values.bytes} B, n = ${n}: ${show(median(perMessage))} instructions a message (${range(perMessage, show)}, ${runs} run(s))`,
  );
}
