import { Channel } from '../../channel/channel.js';
import { kHandleState, kRelease } from '../../channel/handle.js';
import { IpcError } from '../../errors.js';
import type { WakePolicy } from '../../shm/wake.js';
import {
  checkMovable,
  type EndpointToken,
  exportEndpointState,
  SharedEndpoint,
} from './shared-endpoint.js';

/**
 * Prepares a channel endpoint for another thread. Put the token in `workerData` or a
 * `postMessage`, with `token.transfer` as the transfer list, and call {@link importEndpoint} there
 * once. `channel` is dead afterwards, as if sent as a handle; its peer (wherever it lives) now
 * talks to the importing thread through shared memory.
 * Throws CLOSED when `channel` is closed or moved, HANDLE_NOT_MOVABLE when its limits need a
 * ring larger than 1 GiB.
 */
export function exportEndpoint(channel: Channel): EndpointToken {
  if (!(channel instanceof Channel)) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `exportEndpoint expects a Channel, got ${String(channel)}`,
    );
  }
  const state = channel[kHandleState]();
  if (state === undefined) {
    throw new IpcError(
      'CLOSED',
      'this channel endpoint is closed or was moved; it cannot be exported',
    );
  }
  checkMovable(state);
  const token = exportEndpointState(state);
  channel[kRelease]();
  return token;
}

/**
 * Turns a token from {@link exportEndpoint} into a live Channel in this thread. `policy` sets how
 * this endpoint waits (see docs/worker.md); by default the thread's default policy. Throws
 * INVALID_ARGUMENT for anything but a token that was never imported.
 */
export function importEndpoint(token: EndpointToken, policy?: WakePolicy): Channel {
  const channel = new Channel(SharedEndpoint.fromToken(token, policy));
  // Imported: the exporter stops watching for this thread's death.
  token.port.close();
  return channel;
}
