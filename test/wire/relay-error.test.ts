import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IpcError } from '../../src/errors.js';
import { decodeReply, encodeRelayError, RELAY_ERROR_TYPE } from '../../src/wire/message.js';
import { Reader } from '../../src/wire/reader.js';
import { add } from './rpctest.generated.js';

describe('relay error reply', () => {
  it('fails the call with the code it carries, REMOTE_ERROR for an unknown one', () => {
    for (const [code, expected] of [
      ['PEER_CLOSED', 'PEER_CLOSED'],
      ['NOT_A_CODE', 'REMOTE_ERROR'],
    ] as const) {
      const sent = encodeRelayError(9, new IpcError(code as 'PEER_CLOSED', 'job#2 was killed'));
      assert.equal(sent.type, RELAY_ERROR_TYPE);
      const message = { type: sent.type, data: sent.data!, handles: [] };
      const result = decodeReply(add, new Reader(message), message);
      assert.ok(result instanceof IpcError);
      assert.equal(result.code, expected);
      assert.equal(result.message, `${add.name}: job#2 was killed`);
    }
  });
});
