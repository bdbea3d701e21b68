// A pool worker for test/pool: serves pooltest.job, in a thread or a process.
import { resourceLimits, threadId } from 'node:worker_threads';
import { isIpcError, workerChannel } from 'ftl-ipc';
import { JobServer } from './pooltest.generated.js';

const me = threadId === 0 ? `pid ${process.pid}` : `thread ${threadId}`;
const server = new JobServer(await workerChannel());
await server.serve({
  add: ({ value }) => ({ value: value + 1, worker: me }),
  sleep: ({ ms }) => new Promise((resolve) => setTimeout(() => resolve({ worker: me }), ms)),
  hang: ({ tag }, { signal }) =>
    new Promise((_, reject) => {
      signal.addEventListener('abort', () => {
        const code = isIpcError(signal.reason) ? signal.reason.code : String(signal.reason);
        server.aborted({ tag, code, worker: me });
        reject(signal.reason);
      });
    }),
  spin: ({ ms }) => {
    const end = performance.now() + ms;
    while (performance.now() < end);
    return {};
  },
  crash: ({ ms, code }) =>
    new Promise(() => {
      setTimeout(() => process.exit(code), ms);
    }),
  relay: ({ reply }) => {
    reply.send({ type: 1, data: new TextEncoder().encode(me) });
    reply.close();
    return { worker: me };
  },
  limits: () => ({ oldMb: resourceLimits.maxOldGenerationSizeMb ?? 0 }),
  sum: async ({ source }) => {
    let bytes = 0;
    for await (const chunk of source) bytes += chunk.length;
    return { bytes };
  },
});
