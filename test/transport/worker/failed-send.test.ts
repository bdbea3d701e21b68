/**
 * A send that fails leaves every handle in it as it was before the call: still the caller's,
 * working, with its queued messages and its peer none the wiser (issue 26: a send that ran
 * out of shared memory left its handles half moved, their peers waiting forever). In every
 * placement: two ends in this thread, to a worker, over a socket and over NATS.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import {
  Channel,
  connect,
  DataPipe,
  type DataPipeConsumer,
  type DataPipeProducer,
  exportEndpoint,
  type Handle,
  importEndpoint,
  isIpcError,
  listen,
  privateSocketPath,
} from '../../../src/index.js';
import { homeArena, KIND_RING } from '../../../src/shm/arena.js';
import { type NatsServer, natsSuite, startNats } from '../nats/server.js';
import { fillArena, releaseBlocks } from './workers.js';

const WAIT = { timeout: 30_000 };

/** A handle to put in a message, and how to show afterwards that it works as before. */
interface Subject {
  handle: Handle;
  intact(): Promise<void>;
}

async function channelIntact(h: Channel, peer: Channel): Promise<void> {
  // What was queued before the failed send is still there, both ways, and new traffic flows.
  assert.equal((await h.recv()).type, 7);
  assert.equal((await peer.recv()).type, 8);
  h.send({ type: 9, data: new Uint8Array([9]) });
  assert.deepEqual((await peer.recv()).data, new Uint8Array([9]));
  peer.send({ type: 10 });
  assert.equal((await h.recv()).type, 10);
  h.close();
  assert.equal(await peer.closed, 'peer');
  await assert.rejects(peer.recv(), (e) => isIpcError(e, 'PEER_CLOSED'));
}

function queuedBothWays(h: Channel, peer: Channel): void {
  peer.send({ type: 7 });
  h.send({ type: 8 });
}

const subjects: Record<string, () => Subject> = {
  'a local channel end with messages queued both ways'() {
    const [h, peer] = Channel.pair();
    queuedBothWays(h, peer);
    return { handle: h, intact: () => channelIntact(h, peer) };
  },
  'a local channel end whose queue carries a pipe end'() {
    const [h, peer] = Channel.pair();
    const [producer, consumer] = DataPipe.create({ capacityBytes: 256 });
    peer.send({ type: 7, handles: [consumer] });
    h.send({ type: 8 });
    return {
      handle: h,
      async intact() {
        const m = await h.recv();
        assert.equal(m.type, 7);
        producer.write(new Uint8Array([1, 2, 3]));
        assert.deepEqual(
          await (m.handles[0] as DataPipeConsumer).read(),
          new Uint8Array([1, 2, 3]),
        );
        peer.send({ type: 7 });
        await channelIntact(h, peer);
        producer.close();
      },
    };
  },
  'a channel end in shared memory'() {
    const [local, peer] = Channel.pair();
    const h = importEndpoint(exportEndpoint(local));
    queuedBothWays(h, peer);
    return { handle: h, intact: () => channelIntact(h, peer) };
  },
  'a pipe producer'() {
    const [producer, consumer] = DataPipe.create({ capacityBytes: 256 });
    producer.write(new Uint8Array([5]));
    return { handle: producer, intact: () => pipeIntact(producer, consumer) };
  },
};

async function pipeIntact(producer: DataPipeProducer, consumer: DataPipeConsumer): Promise<void> {
  producer.write(new Uint8Array([6]));
  assert.deepEqual(await consumer.read(2), new Uint8Array([5, 6]));
  producer.close();
  await consumer.closed;
}

/** Where the channel the message goes through has its other end. */
interface Placement {
  /** A sender with the given limits; `full` when its peer's queue must be full. */
  sender(options: {
    capacity?: number;
    maxHandles?: number;
    full?: boolean;
    closed?: boolean;
  }): Promise<Channel>;
  /** Whether the sender uses the thread arena (only then can shared memory run out). */
  shared: boolean;
  /** The sender's peer, when this thread holds it (a send of it is a loop). */
  peerOf(sender: Channel): Channel | undefined;
  done(): Promise<void>;
}

function localPlacement(): Placement {
  const peers = new Map<Channel, Channel>();
  return {
    shared: false,
    async sender({ capacity = 8, maxHandles = 4, full = false, closed = false }) {
      const [a, b] = Channel.pair({ capacity, maxHandles });
      peers.set(a, b);
      if (full) for (let i = 0; i < capacity; i++) a.send({ type: 0 });
      if (closed) b.close();
      return a;
    },
    peerOf: (sender) => peers.get(sender),
    async done() {
      for (const p of peers.values()) p.close();
    },
  };
}

/** A connection between two ends in this thread, over a socket or NATS. */
interface Connection {
  client: Channel;
  server: Channel;
  close(): Promise<void>;
}

async function overSocket(): Promise<Connection> {
  const path = await privateSocketPath();
  const listener = await listen({ path });
  const [client, server] = await Promise.all([connect({ path }), listener.accept()]);
  return {
    client,
    server: server as Channel,
    async close() {
      client.close();
      server?.close();
      await listener.close();
      await rm(dirname(path), { recursive: true, force: true });
    },
  };
}

/** One nats-server for the file, started by the first test that needs it. */
let nats: Promise<{ server: NatsServer; nc: NatsConnection }> | undefined;
let services = 0;
after(async () => {
  const started = await nats;
  await started?.nc.close();
  await started?.server.stop();
});

async function overNats(): Promise<Connection> {
  nats ??= startNats().then(async (server) => ({
    server,
    nc: await natsConnect({ servers: server.url }),
  }));
  const { nc } = await nats;
  const service = `failed-send-${services++}`;
  const listener = await listen({ nats: nc, service }, { insecure: true });
  const [client, server] = await Promise.all([
    connect({ nats: nc, service }, { insecure: true }),
    listener.accept(),
  ]);
  return {
    client,
    server: server as Channel,
    async close() {
      client.close();
      server?.close();
      await listener.close();
    },
  };
}

/**
 * The sender is an end that arrived over a connection, so its sends go straight to the
 * connection (handles become descriptors there); its peer stays in this thread, bridged.
 */
function connectedPlacement(open: () => Promise<Connection>): Placement {
  const peers = new Map<Channel, Channel>();
  const connections: Connection[] = [];
  return {
    shared: false,
    async sender({ capacity = 8, maxHandles = 4, full = false, closed = false }) {
      const connection = await open();
      connections.push(connection);
      const [peer, travelling] = Channel.pair({ capacity, maxHandles });
      connection.client.send({ type: 0, handles: [travelling] });
      const sender = (await connection.server.recv()).handles[0] as Channel;
      peers.set(sender, peer);
      if (full) for (let i = 0; i < capacity; i++) sender.send({ type: 0 });
      if (closed) {
        peer.close();
        await sender.closed;
      }
      return sender;
    },
    peerOf: (sender) => peers.get(sender),
    async done() {
      for (const [sender, peer] of peers) {
        sender.close();
        peer.close();
      }
      for (const c of connections) await c.close();
    },
  };
}

function workerPlacement(): Placement {
  const workers: Worker[] = [];
  return {
    shared: true,
    async sender({ capacity = 8, maxHandles = 4, full = false, closed = false }) {
      const [a, b] = Channel.pair({ capacity, maxHandles });
      const token = exportEndpoint(b);
      const worker = new Worker(new URL('./arena-worker.js', import.meta.url), {
        workerData: { scenario: closed ? 'importThenClose' : 'importOnly', token },
        transferList: token.transfer,
      });
      workers.push(worker);
      await new Promise((resolve) => worker.once('message', resolve));
      if (closed) await a.closed;
      if (full) for (let i = 0; i < capacity; i++) a.send({ type: 0 });
      return a;
    },
    peerOf: () => undefined,
    async done() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

const placements: Record<string, () => Placement> = {
  'between two ends in this thread': localPlacement,
  'to a worker': workerPlacement,
  'over a socket': () => connectedPlacement(overSocket),
  'over NATS': () => connectedPlacement(overNats),
};

interface Reason {
  code: string;
  shared?: boolean;
  localOnly?: boolean;
  /** Needs the sender's peer in this thread. */
  peerHere?: boolean;
  run(p: Placement, handle: Handle): Promise<void>;
}

const reasons: Record<string, Reason> = {
  'a full queue': {
    code: 'BACKPRESSURE',
    async run(p, handle) {
      (await p.sender({ capacity: 2, full: true })).send({ type: 3, handles: [handle] });
    },
  },
  'a closed peer': {
    code: 'PEER_CLOSED',
    async run(p, handle) {
      (await p.sender({ closed: true })).send({ type: 3, handles: [handle] });
    },
  },
  'an invalid type': {
    code: 'INVALID_ARGUMENT',
    async run(p, handle) {
      (await p.sender({})).send({ type: -1, handles: [handle] });
    },
  },
  'too many handles': {
    code: 'TOO_MANY_HANDLES',
    async run(p, handle) {
      const [x, y] = Channel.pair();
      try {
        (await p.sender({ maxHandles: 1 })).send({ type: 3, handles: [handle, x] });
      } finally {
        x.close();
        y.close();
      }
    },
  },
  'the channel itself among the handles': {
    code: 'HANDLE_NOT_MOVABLE',
    async run(p, handle) {
      const sender = await p.sender({});
      sender.send({ type: 3, handles: [handle, sender] });
    },
  },
  // Over a socket the peer is found through the bridge: the loop check.
  "the channel's own peer among the handles": {
    code: 'HANDLE_NOT_MOVABLE',
    peerHere: true,
    async run(p, handle) {
      const sender = await p.sender({});
      sender.send({ type: 3, handles: [handle, p.peerOf(sender) as Channel] });
    },
  },
  'data over maxMessageBytes': {
    code: 'TOO_LARGE',
    async run(p, handle) {
      const sender = await p.sender({});
      const data = new Uint8Array(sender.limits.maxMessageBytes + 1);
      sender.send({ type: 3, data, handles: [handle] });
    },
  },
  'a closed sender': {
    code: 'CLOSED',
    async run(p, handle) {
      const sender = await p.sender({});
      sender.close();
      sender.send({ type: 3, handles: [handle] });
    },
  },
  'no shared memory for the first ring': exhaustion({}),
  'no shared memory for the handles': exhaustion({ ring: true }),
  'no shared memory for the larger ring a message needs, with room for its handles': exhaustion({
    ring: true,
    leave: 128,
    bytes: 4096,
  }),
  // Room for the handle blocks, the end's slot and one ring: the ring of the other direction
  // is what fails, after messages were replayed into the first.
  'no shared memory for the second ring of a local end on its way': {
    ...exhaustion({ ring: true, leave: 1024 }),
    localOnly: true,
  },
};

/**
 * A send that finds the sender's arena full: after a first message (`ring`) made its ring,
 * with a block of `leave` bytes left free, of a message of `bytes`.
 */
function exhaustion({ ring = false, leave = 0, bytes = 0 }): Reason {
  return {
    code: 'RESOURCE_EXHAUSTED',
    shared: true,
    async run(p, handle) {
      const sender = await p.sender({});
      if (ring) sender.send({ type: 1 });
      const arena = homeArena();
      const room = leave > 0 ? arena.alloc(leave - 16, KIND_RING) : 0;
      const blocks = fillArena(arena);
      if (room !== 0) arena.free(room);
      try {
        sender.send({ type: 3, data: new Uint8Array(bytes), handles: [handle] });
      } finally {
        releaseBlocks(arena, blocks);
      }
    },
  };
}

for (const [placementName, makePlacement] of Object.entries(placements)) {
  const options = placementName === 'over NATS' ? natsSuite : {};
  describe(`a failed send ${placementName} leaves every handle in it as it was`, options, () => {
    for (const [reasonName, reason] of Object.entries(reasons)) {
      for (const [subjectName, makeSubject] of Object.entries(subjects)) {
        const placement = makePlacement();
        if (reason.shared === true && !placement.shared) continue;
        if (reason.localOnly === true && !subjectName.startsWith('a local')) continue;
        if (reason.peerHere === true && placementName === 'to a worker') continue;
        it(`${reasonName} (${reason.code}): ${subjectName}`, WAIT, async () => {
          const subject = makeSubject();
          try {
            await assert.rejects(reason.run(placement, subject.handle), (e) =>
              isIpcError(e, reason.code as never),
            );
            await subject.intact();
          } finally {
            await placement.done();
          }
        });
      }
    }
  });
}
