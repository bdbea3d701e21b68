/**
 * What observability costs a call: generated PingClient → PingServer in one thread (so both
 * sides' work is counted), in three modes taken in turn each round: `off` (the library's
 * default), `metrics` (both channels in a MetricsRegistry, rendered every 100 ms, ten times as
 * often as a scraper would) and `tracing` (enableTracing() with the OpenTelemetry SDK recording
 * every span, a client and a server span per call, into a processor that drops them).
 * Reports per mode the median and range of sequential µs per call and of calls/s with 64 in
 * flight, and the median of the per-round ratios to `off`.
 * Run: npm run build && node dist/bench/observe.bench.js [--rounds=7]
 */
import { loadavg } from 'node:os';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { PingClient, servePing } from '../examples/ping/ping.generated.js';
import { Channel, disableTracing, enableTracing, MetricsRegistry } from '../src/index.js';
import { median, range } from './stats.js';

const arg = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const ROUNDS = Number(arg('rounds') ?? 7);
const SEQUENTIAL = 20_000;
const DURATION_MS = 600;
const MODES = ['off', 'metrics', 'tracing'] as const;
type Mode = (typeof MODES)[number];

trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] }),
);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

async function measure(mode: Mode): Promise<{ sequentialUs: number; inFlight64: number }> {
  const [a, b] = Channel.pair();
  void servePing(b, { ping: ({ value }) => ({ value: value + 1 }) });
  const client = new PingClient(a);
  let render: NodeJS.Timeout | undefined;
  if (mode === 'metrics') {
    const registry = new MetricsRegistry()
      .add(a, { channel: 'client' })
      .add(b, { channel: 'server' });
    render = setInterval(() => registry.render(), 100);
  }
  if (mode === 'tracing') await enableTracing();
  try {
    for (let i = 0; i < 2000; i++) await client.ping({ value: i }); // warm up
    let t = performance.now();
    for (let i = 0; i < SEQUENTIAL; i++) await client.ping({ value: i });
    const sequentialUs = ((performance.now() - t) * 1000) / SEQUENTIAL;
    let done = 0;
    t = performance.now();
    const end = t + DURATION_MS;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() < end) {
          await client.ping({ value: done });
          done++;
        }
      }),
    );
    return { sequentialUs, inFlight64: done / ((performance.now() - t) / 1000) };
  } finally {
    clearInterval(render);
    disableTracing();
    client.close();
  }
}

const results = new Map<Mode, { sequentialUs: number; inFlight64: number }[]>(
  MODES.map((m) => [m, []]),
);
console.log(
  `load average before: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
for (let round = 0; round < ROUNDS; round++) {
  // Rotate the order so that no mode always runs first or last in a round.
  for (let i = 0; i < MODES.length; i++) {
    const mode = MODES[(round + i) % MODES.length]!;
    results.get(mode)!.push(await measure(mode));
  }
}
const off = results.get('off')!;
console.log(
  'mode     sequential µs/call (range)      64 in flight calls/s (range)        ratio to off (seq, 64)',
);
for (const mode of MODES) {
  const rs = results.get(mode)!;
  const seq = rs.map((r) => r.sequentialUs);
  const fl = rs.map((r) => r.inFlight64);
  const ratioSeq = median(rs.map((r, i) => r.sequentialUs / off[i]!.sequentialUs));
  const ratioFl = median(rs.map((r, i) => r.inFlight64 / off[i]!.inFlight64));
  console.log(
    `${mode.padEnd(8)} ${median(seq).toFixed(2).padStart(6)} (${range(seq, (x) => x.toFixed(2))})`.padEnd(
      42,
    ) +
      `${Math.round(median(fl)).toString().padStart(8)} (${range(fl, (x) => String(Math.round(x)))})`.padEnd(
        36,
      ) +
      `${ratioSeq.toFixed(3)}, ${ratioFl.toFixed(3)}`,
  );
}
console.log(
  `load average after: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
