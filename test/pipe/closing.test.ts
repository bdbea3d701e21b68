/** docs/pipe.md: "Pending waits on a closed end reject with CLOSED." */
import { describe, it } from 'node:test';
import { DataPipe } from '../../src/index.js';
import { rejectsCode } from '../channel/helpers.js';

describe('pending pipe waits on an end that closes', () => {
  it("the consumer's read and readable reject with CLOSED", async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 64 });
    const read = consumer.read();
    const readable = consumer.readable(8);
    consumer.close();
    await rejectsCode(read, 'CLOSED');
    await rejectsCode(readable, 'CLOSED');
    await rejectsCode(consumer.read(), 'CLOSED');
    producer.close();
  });

  it("the producer's writable and writeAll reject with CLOSED", async () => {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 64 });
    producer.write(new Uint8Array(64));
    const writable = producer.writable(1);
    const writeAll = producer.writeAll(new Uint8Array(100));
    producer.close();
    await rejectsCode(writable, 'CLOSED');
    await rejectsCode(writeAll, 'CLOSED');
    await rejectsCode(producer.writable(1), 'CLOSED');
    consumer.close();
  });
});
