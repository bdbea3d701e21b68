/** Starts rpc-peer.ts, the rpctest.work server, in a worker or a child process. */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type Channel, exportEndpoint, type SpawnedProcess, spawnProcess } from 'ftl-ipc';

const peer = fileURLToPath(new URL('./rpc-peer.js', import.meta.url));

export function startWorkerPeer(channel: Channel): Worker {
  const token = exportEndpoint(channel);
  return new Worker(peer, { workerData: { token }, transferList: token.transfer });
}

export function startProcessPeer(channel: Channel): Promise<SpawnedProcess> {
  return spawnProcess(peer, {
    channels: { work: channel },
    env: { ...process.env, FTL_IPC_RPC_PEER: '1' },
  });
}
