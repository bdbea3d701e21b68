/**
 * A fast producer meets a slow consumer on a channel of capacity 4, and handles backpressure with
 * each of FTL's strategies in turn: drop, drop and close, wait and retry.
 * Run it with `npm start`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Channel, isIpcError } from 'ftl-ipc';

const say = (line: string) => process.stdout.write(`${line}\n`);
const text = new TextEncoder();

/** Reads one message every `everyMs` until the producer closes; returns what it got. */
async function slowConsumer(ch: Channel, everyMs: number): Promise<number[]> {
  const got: number[] = [];
  for await (const message of ch) {
    got.push(message.type);
    await sleep(everyMs);
  }
  return got;
}

async function plainSend(): Promise<void> {
  say('\n1. send() with no strategy: the fifth message finds the queue full');
  const [producer, consumer] = Channel.pair({ capacity: 4 });
  for (let i = 1; i <= 5; i++) {
    try {
      producer.send({ type: i, data: text.encode(`message ${i}`) });
      say(`   sent ${i} (queue now ${consumer.stats.queuedMessages}/4)`);
    } catch (err) {
      if (!isIpcError(err, 'BACKPRESSURE')) throw err;
      say(`   ${err.code}: ${err.message}`);
    }
  }
  producer.close();
  consumer.close();
}

async function drop(): Promise<void> {
  say("\n2. onFull: 'drop' (a NIC driver handing packets to TCP/IP: TCP recovers lost packets)");
  const [producer, consumer] = Channel.pair({ capacity: 4 });
  const consuming = slowConsumer(consumer, 2);
  for (let i = 1; i <= 20; i++) {
    producer.send({ type: i }, { onFull: 'drop' });
    if (i % 5 === 0) await sleep(5);
  }
  producer.close();
  const got = await consuming;
  say(
    `   offered 20, delivered ${got.length} (${got.join(' ')}), dropped ${producer.stats.dropped}`,
  );
}

async function dropAndClose(): Promise<void> {
  say("\n3. onFull: 'close' (a server replying to a client that does not read: cut it off)");
  const [server, client] = Channel.pair({ capacity: 4 });
  let sent = 0;
  for (let i = 1; i <= 10 && server.send({ type: i }, { onFull: 'close' }); i++) sent++;
  say(`   the server sent ${sent} replies, then closed on the first full queue`);
  const got = await slowConsumer(client, 0);
  say(`   the client still reads all ${got.length}, then sees the channel closed`);
}

async function waitAndRetry(): Promise<void> {
  say('\n4. sendWait() (file system writes: nothing may be lost)');
  const [producer, consumer] = Channel.pair({ capacity: 4 });
  const consuming = slowConsumer(consumer, 1);
  const started = performance.now();
  for (let i = 1; i <= 20; i++) await producer.sendWait({ type: i }, { timeoutMs: 1000 });
  producer.close();
  const got = await consuming;
  const ms = (performance.now() - started).toFixed(0);
  say(
    `   delivered ${got.length} of 20 in order in ${ms} ms; the producer waited ${producer.stats.backpressured} times`,
  );
  say(`   the consumer's queue never held more than ${consumer.stats.highWaterMark} messages`);
}

say('ftl-ipc: a producer meets backpressure on a channel of capacity 4');
await plainSend();
await drop();
await dropAndClose();
await waitAndRetry();
