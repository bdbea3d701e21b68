/**
 * A soak of the shared arena as a long-running service uses it (issue 26): 64 flows, each a
 * channel whose far end moves from worker to worker (8 workers), carrying round trips whose
 * message size changes every 30 s (16 B to 256 KiB), while half of the workers (4, one at a
 * time) are terminated and replaced. Samples RSS and the arena figures; RSS and arena use must
 * stay flat.
 *
 * Run: npm run build && nice node dist/bench/soak.bench.js [--minutes=10] [--sample=30]
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import {
  Channel,
  type EndpointToken,
  exportEndpoint,
  importEndpoint,
  isIpcError,
  sharedMemoryStats,
} from '../src/index.js';

const arg = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const MINUTES = Number(arg('minutes') ?? 10);
const SAMPLE_S = Number(arg('sample') ?? 30);
const WORKERS = 8;
const DYING = 4;
const FLOWS = 64;
const ROUNDS = 4;
const PHASE_S = 30;
/** Every this many seconds one of the first DYING workers is terminated and replaced. */
const KILL_EVERY_S = 5;
const SIZES = [16, 1024, 64 * 1024, 256 * 1024, 4096, 256, 16 * 1024, 128 * 1024];
const LIMITS = { capacity: 8, capacityBytes: 2 * 1024 * 1024, maxMessageBytes: 256 * 1024 };
const MiB = 2 ** 20;
const ECHO = 1;
const GIVE_BACK = 2;
const RETURNED = 3;

/** A worker: echoes on every channel it gets, and gives a channel back when asked. */
async function workerMain(token: EndpointToken): Promise<void> {
  const ctrl = importEndpoint(token);
  const serve = async (h: Channel) => {
    try {
      for (;;) {
        const m = await h.recv();
        if (m.type === GIVE_BACK) {
          await ctrl.sendWait({ type: RETURNED, data: m.data, handles: [h] });
          return;
        }
        await h.sendWait({ type: ECHO, data: m.data });
      }
    } catch (error) {
      if (!isIpcError(error, 'PEER_CLOSED') && !isIpcError(error, 'CLOSED')) throw error;
      h.close();
    }
  };
  for await (const m of ctrl) for (const h of m.handles) void serve(h as Channel);
}

interface Slot {
  worker: Worker;
  ctrl: Channel;
  /** Flows waiting for their channel back from this worker, by flow id. */
  waiting: Map<number, { resolve(ch: Channel): void; reject(e: unknown): void }>;
}

async function main(): Promise<void> {
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const end = started + MINUTES * 60_000;
  const slots: Slot[] = [];
  let moves = 0;
  let trips = 0;
  let deaths = 0;
  let broken = 0;

  const startWorker = (i: number): void => {
    const [ctrl, theirs] = Channel.pair(LIMITS);
    const token = exportEndpoint(theirs);
    const worker = new Worker(new URL(import.meta.url), {
      workerData: token,
      transferList: token.transfer,
    });
    const slot: Slot = { worker, ctrl, waiting: new Map() };
    slots[i] = slot;
    void (async () => {
      try {
        for await (const m of ctrl) {
          const id = new DataView(m.data.buffer, m.data.byteOffset).getUint32(0);
          slot.waiting.get(id)?.resolve(m.handles[0] as Channel);
          slot.waiting.delete(id);
        }
      } catch {
        // The worker died: PEER_CLOSED.
      }
      ctrl.close();
      for (const w of slot.waiting.values()) w.reject(new Error('worker died'));
      slot.waiting.clear();
    })();
  };
  for (let i = 0; i < WORKERS; i++) startWorker(i);

  /** What each flow awaits now: the flows that never finish say where they hang. */
  const waits: string[] = [];
  const flow = async (id: number): Promise<void> => {
    let [mine, theirs] = Channel.pair(LIMITS);
    const tag = new Uint8Array(4);
    new DataView(tag.buffer).setUint32(0, id);
    while (performance.now() < end) {
      const slot = slots[Math.floor(Math.random() * WORKERS)] as Slot;
      try {
        waits[id] = 'the move to a worker';
        await slot.ctrl.sendWait({ type: 0, handles: [theirs] });
        moves++;
        const size = SIZES[Math.floor(elapsed() / PHASE_S) % SIZES.length] as number;
        const data = new Uint8Array(size).fill(id & 255);
        for (let r = 0; r < ROUNDS; r++) {
          waits[id] = 'room for an echo request';
          await mine.sendWait({ type: ECHO, data });
          waits[id] = `an echo from thread ${slot.worker.threadId}`;
          const back = await mine.recv();
          if (back.data.byteLength !== size)
            throw new Error(`echo of ${back.data.byteLength} bytes`);
          trips++;
        }
        const returned = new Promise<Channel>((resolve, reject) =>
          slot.waiting.set(id, { resolve, reject }),
        );
        waits[id] = 'room for a give-back request';
        await mine.sendWait({ type: GIVE_BACK, data: tag });
        waits[id] = `the channel back from thread ${slot.worker.threadId}`;
        theirs = await returned;
        moves++;
      } catch (error) {
        // Its far end died with a worker: a new channel.
        if (!(error instanceof Error) || (!isIpcError(error) && error.message !== 'worker died')) {
          throw error;
        }
        broken++;
        mine.close();
        theirs.close();
        [mine, theirs] = Channel.pair(LIMITS);
      }
    }
    mine.close();
    theirs.close();
    waits[id] = 'done';
  };

  const samples: string[] = [];
  let last = { t: 0, moves: 0, trips: 0 };
  const sample = () => {
    const t = elapsed();
    const arenas = sharedMemoryStats();
    const sum = (f: (a: (typeof arenas)[number]) => number) =>
      arenas.reduce((s, a) => s + f(a), 0) / MiB;
    const dt = t - last.t;
    const row = [
      t.toFixed(0),
      SIZES[Math.floor(t / PHASE_S) % SIZES.length],
      (process.memoryUsage().rss / MiB).toFixed(0),
      arenas.length,
      sum((a) => a.size).toFixed(0),
      sum((a) => a.used).toFixed(1),
      sum((a) => a.liveBytes).toFixed(1),
      arenas.reduce((s, a) => s + a.liveBlocks, 0),
      ((moves - last.moves) / dt).toFixed(0),
      ((trips - last.trips) / dt).toFixed(0),
      deaths,
    ];
    last = { t, moves, trips };
    samples.push(`| ${row.join(' | ')} |`);
    process.stderr.write(`${samples.at(-1)}\n`);
  };
  const sampler = setInterval(sample, SAMPLE_S * 1000);
  let victim = 0;
  /** Threads terminated so far: a flow that hangs on one of them missed its close. */
  const killed = new Set<number>();
  const killer = setInterval(() => {
    const i = victim++ % DYING;
    const slot = slots[i] as Slot;
    deaths++;
    killed.add(slot.worker.threadId);
    void slot.worker.terminate();
    startWorker(i);
  }, KILL_EVERY_S * 1000);

  const flows = Promise.all(Array.from({ length: FLOWS }, (_, id) => flow(id)));
  // A flow's wait that never settles is a lost wake-up or close: the soak says so and ends.
  await Promise.race([
    flows,
    new Promise((resolve) => setTimeout(resolve, MINUTES * 60_000 + 30_000)),
  ]);
  const hung = waits.flatMap((w, id) =>
    w === 'done'
      ? []
      : [
          `flow ${id} waits for ${w}${killed.has(Number(w.split(' ').at(-1))) ? ' (terminated)' : ''}`,
        ],
  );
  clearInterval(killer);
  clearInterval(sampler);
  sample();
  for (const slot of slots) slot.ctrl.close();
  await Promise.all(slots.map((s) => s.worker.terminate()));
  await new Promise((resolve) => setTimeout(resolve, 500));
  const live = sharedMemoryStats().reduce((s, a) => s + a.liveBlocks, 0);

  console.log(
    `soak: ${MINUTES} min, ${WORKERS} workers (${DYING} of them terminated in turn every ${KILL_EVERY_S} s), ${FLOWS} flows, message size changing every ${PHASE_S} s`,
  );
  console.log(
    `${deaths} worker deaths, ${broken} flows restarted, live blocks after closing all: ${live}`,
  );
  console.log(`flows that never finished: ${hung.length ? hung.join('; ') : 'none'}\n`);
  console.log(
    '| s | message bytes | RSS MiB | arenas | arena size MiB | used MiB | live MiB | live blocks | moves/s | round trips/s | deaths |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const row of samples) console.log(row);
}

if (isMainThread) await main();
else {
  await workerMain(workerData as EndpointToken);
  parentPort?.close();
}
