import assert from 'node:assert/strict';
import { it } from 'node:test';
import { renderStatus } from '../../src/runtime/status.js';

it('renders services, then the channels they reported', () => {
  const stats = {
    sent: 5,
    received: 4,
    sentBytes: 50,
    receivedBytes: 40,
    dropped: 1,
    backpressured: 2,
    discarded: 0,
    queuedMessages: 3,
    queuedBytes: 30,
    highWaterMark: 7,
  };
  const text = renderStatus([
    {
      name: 'tcpip',
      service: 'tcpip',
      isolation: 'thread',
      state: 'running',
      id: 'thread 1',
      restarts: 0,
      channels: [{ name: 'client:http', stats }],
    },
    {
      name: 'http',
      service: 'http',
      isolation: 'process',
      state: 'backoff',
      id: undefined,
      restarts: 2,
      channels: [],
    },
  ]);
  assert.equal(
    text,
    `SERVICE  ISOLATION  STATE    ID        RESTARTS
tcpip    thread     running  thread 1  0
http     process    backoff  -         2
SERVICE  CHANNEL      QUEUED  HIGH-WATER  DROPPED  BACKPRESSURED
tcpip    client:http  3       7           1        2
`,
  );
});
