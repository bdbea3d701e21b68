import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runPing } from '../../examples/ping/main.js';
import { runTcpip } from '../../examples/tcpip/main.js';

describe('examples on generated code', () => {
  it('ping: the server sums the pings of its client', async () => {
    assert.deepEqual(await runPing(4), [1, 3, 6, 10]);
  });

  it('tcpip: listen, accept, echo, close', async () => {
    assert.deepEqual(await runTcpip(), [
      'received "hello"',
      'received "bye"',
      'closed by the server',
    ]);
  });
});
