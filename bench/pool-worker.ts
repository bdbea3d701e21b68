// The ftl-ipc side of bench/pool.bench.ts: a pool worker serving poolbench.task.
import { createHash } from 'node:crypto';
import { workerChannel } from 'ftl-ipc';
import { serveTask } from './poolbench.generated.js';

await serveTask(await workerChannel(), {
  inc: ({ value }) => ({ value: value + 1 }),
  sha: ({ data }) => ({ digest: createHash('sha256').update(data).digest() }),
  spin: ({ ms }) => {
    const end = performance.now() + ms;
    while (performance.now() < end);
    return {};
  },
});
