import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { copyBytes } from '../../src/channel/copy.js';

/**
 * Every size class (empty, on-heap, slab, larger than a slab), as a Uint8Array or a Buffer (whose
 * own slice is a view, not a copy).
 */
const input = fc
  .tuple(
    fc.oneof(
      { weight: 20, arbitrary: fc.uint8Array({ maxLength: 9000 }) },
      {
        weight: 1,
        // Patterned, not random: 70 KB of random bytes would make a failure slow to shrink.
        arbitrary: fc
          .integer({ min: 65_537, max: 70_000 })
          .map((n) => Uint8Array.from({ length: n }, (_, i) => (i * 31) & 255)),
      },
    ),
    fc.boolean(),
  )
  .map(([bytes, asBuffer]) => (asBuffer ? Buffer.from(bytes) : bytes));

it('copies are exact, independent of the source and of each other, and 8-byte aligned', () => {
  fc.assert(
    fc.property(fc.array(input, { maxLength: 60 }), (inputs) => {
      const originals = inputs.map((bytes) => Buffer.from(bytes));
      const copies = inputs.map(copyBytes);
      for (const input of inputs) input.fill(0xee);
      copies.forEach((copy, i) => {
        assert.ok(
          (originals[i] as Buffer).equals(copy),
          `copy ${i} of ${copy.byteLength} bytes differs from its source`,
        );
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
