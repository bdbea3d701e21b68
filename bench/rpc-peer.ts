/**
 * The server side of bench/rpc.bench.ts: the same handler, `v + 1` on an int32, behind each
 * peer. In a worker `workerData.kind` says which; in a child process, argv[2] (and argv[3] the
 * socket path for gRPC).
 */
import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { createBirpc } from 'birpc';
import * as Comlink from 'comlink';
import * as nodeAdapter from 'comlink/dist/umd/node-adapter.js';
import { servePing } from '../examples/ping/ping.generated.js';
import { type EndpointToken, importEndpoint, parentChannels } from '../src/index.js';

/** comlink ships its Node adapter as CommonJS only: its `default` is one level further down. */
export const nodeEndpoint = ((m: unknown) =>
  typeof m === 'function' ? m : (m as { default: unknown }).default)(
  nodeAdapter.default,
) as typeof nodeAdapter.default.default;

export const handler = (v: number): number => v + 1;

export type WorkerJob =
  | { kind: 'ftl'; token: EndpointToken }
  | { kind: 'birpc'; port: MessagePort }
  | { kind: 'comlink'; port: MessagePort };

/** What the client calls; the same shape for birpc and comlink. */
export interface PingApi {
  ping(v: number): number;
}

async function inWorker(job: WorkerJob): Promise<void> {
  switch (job.kind) {
    case 'ftl':
      // Library defaults: no options.
      await servePing(importEndpoint(job.token), {
        ping: ({ value }) => ({ value: handler(value) }),
      });
      return;
    case 'birpc':
      createBirpc<object, PingApi>(
        { ping: handler },
        { post: (data) => job.port.postMessage(data), on: (fn) => job.port.on('message', fn) },
      );
      job.port.once('close', () => parentPort!.close());
      return;
    case 'comlink':
      Comlink.expose({ ping: handler } satisfies PingApi, nodeEndpoint(job.port));
      job.port.once('close', () => parentPort!.close());
      return;
  }
}

async function inChild(kind: string, path: string | undefined): Promise<void> {
  switch (kind) {
    case 'ftl': {
      const { ping } = await parentChannels(['ping']);
      await servePing(ping, { ping: ({ value }) => ({ value: handler(value) }) });
      return;
    }
    case 'birpc': {
      createBirpc<object, PingApi>(
        { ping: handler },
        {
          post: (data) => process.send!(data),
          on: (fn) => process.on('message', fn),
        },
      );
      process.once('disconnect', () => process.exit(0));
      return;
    }
    case 'grpc': {
      const grpc = await import('@grpc/grpc-js');
      const { loadProto } = await import('./rpc-grpc.js');
      const server = new grpc.Server();
      server.addService(loadProto().service, {
        ping: (
          call: { request: { value: number } },
          callback: (error: null, reply: { value: number }) => void,
        ) => callback(null, { value: handler(call.request.value) }),
      });
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(`unix:${path}`, grpc.ServerCredentials.createInsecure(), (error) =>
          error ? reject(error) : resolve(),
        ),
      );
      process.stdout.write('ready\n');
      process.stdin.resume();
      process.stdin.once('end', () => server.forceShutdown());
      return;
    }
  }
}

if (!isMainThread) await inWorker(workerData as WorkerJob);
else if (process.argv[2] !== undefined) await inChild(process.argv[2], process.argv[3]);
