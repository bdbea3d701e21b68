import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { copyBytes } from '../../src/channel/copy.js';

it('copies are exact, independent of the source and of each other, and 8-byte aligned', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 9000 }), { maxLength: 60 }), (inputs) => {
      const copies = inputs.map(copyBytes);
      for (const input of inputs) input.fill(0xee);
      copies.forEach((copy, i) => {
        const source = inputs[i] as Uint8Array;
        assert.equal(copy.byteLength, source.byteLength);
        assert.equal(copy.byteOffset % 8, 0);
        copy.fill(i & 0xff);
      });
      copies.forEach((copy, i) => {
        assert.ok(
          copy.every((b) => b === (i & 0xff)),
          `copy ${i} was overwritten by another`,
        );
      });
    }),
    { numRuns: 300 },
  );
});
