/**
 * The first hop of chain.test.ts, a worker thread: starts the child process of the next hop and
 * passes every handle the main thread sends it on to that child, over the child's socket.
 */
import { Channel, parentChannels, spawnProcess } from '../../../src/index.js';

const { ctl } = await parentChannels(['ctl']);
const [up, forChild] = Channel.pair();
const { exited } = await spawnProcess(new URL('./hop-child.js', import.meta.url), {
  channels: { up: forChild },
  args: [process.env.CHAIN_NATS_URL as string],
});
for await (const m of ctl) await up.sendWait(m);
up.close();
await exited;
