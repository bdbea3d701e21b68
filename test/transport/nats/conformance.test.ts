import { after, before, describe } from 'node:test';
import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import { Channel, connect, type Listener, listen, type NatsAddress } from '../../../src/index.js';
import { channelConformance } from '../../channel/conformance.js';
import { type NatsServer, natsSuite, startNats } from './server.js';

/*
 * Both ends of every pair are here, but their link runs over NATS twice: a local pair is sent
 * to a relay listening on NATS, which sends both ends back. A message from one end crosses the
 * server to the relay, back to the local pair, to the relay again and back: four NATS hops and
 * three bridges, with the bound and order kept end to end.
 */
describe('over NATS', natsSuite, () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let listener: Listener<NatsAddress>;
  let relay: Channel;

  before(async () => {
    server = await startNats();
    nc = await natsConnect({ servers: server.url });
    listener = await listen({ nats: nc, service: 'relay' }, { secret: 'conformance' });
    const accepted = listener.accept();
    relay = await connect(listener.address, { secret: 'conformance' });
    const far = (await accepted) as Channel;
    void (async () => {
      for (;;) {
        const m = await far.recv().catch(() => undefined);
        if (m === undefined) return;
        await far.sendWait(m);
      }
    })();
  });

  after(async () => {
    relay.close();
    await listener.close();
    // Some tests leave an end open (as callers may): closing the NATS connection ends them.
    await nc.close();
    await server.stop();
  });

  channelConformance('two ends, through a relay over NATS', async (options) => {
    const [x, y] = Channel.pair(options);
    await relay.sendWait({ type: 1, handles: [x, y] });
    const back = await relay.recv();
    return back.handles as [Channel, Channel];
  });
});
