/**
 * The server side of the RPC tests in another thread or process: serves rpctest.work on the
 * channel it is given (a worker's `workerData.token`, or a child's `work` channel) until the
 * client closes, then returns, leaving the thread or process to end by itself.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import {
  type Channel,
  type EndpointToken,
  importEndpoint,
  parentChannels,
} from '../../src/index.js';
import { WorkServer } from './rpctest.generated.js';

/** The handlers every placement shares; `hang` reports through a push when its signal fires. */
export function serveWork(channel: Channel): Promise<void> {
  const server = new WorkServer(channel);
  return server.serve({
    add: ({ value }) => ({ value: value + 1 }),
    hang: ({ tag }, context) =>
      new Promise((_, reject) => {
        context.signal.addEventListener('abort', () => {
          const reason = context.signal.reason as { code?: string };
          server.aborted({
            tag,
            code: reason.code ?? 'unknown',
            deadline: context.deadline !== undefined,
          });
          reject(reason);
        });
      }),
    noisy: async ({ value }) => {
      await server.noteWait({ value });
      return { value };
    },
  });
}

if (!isMainThread) {
  await serveWork(importEndpoint((workerData as { token: EndpointToken }).token));
} else if (process.env.FTL_IPC_RPC_PEER === '1') {
  const { work } = await parentChannels(['work']);
  await serveWork(work);
}
