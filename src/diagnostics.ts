import diagnosticsChannel from 'node:diagnostics_channel';

/**
 * The library never logs; it publishes here. Subscribe with
 * `diagnostics_channel.subscribe('ftl-ipc:channel:backpressure', fn)`. Names are listed in
 * docs/channel.md. Publishing costs one property read when nobody listens.
 */
export const diagnostics = {
  backpressure: diagnosticsChannel.channel('ftl-ipc:channel:backpressure'),
  drop: diagnosticsChannel.channel('ftl-ipc:channel:drop'),
  close: diagnosticsChannel.channel('ftl-ipc:channel:close'),
  /** A relay into a worker thread could not pass a message on and closed: `{ error }`. */
  relayError: diagnosticsChannel.channel('ftl-ipc:channel:relay-error'),
} as const;
