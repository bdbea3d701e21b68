import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Channel, type SpawnedProcess, spawnProcess } from '../../../src/index.js';
import { channelConformance } from '../../channel/conformance.js';

/*
 * Both ends of every pair are socket endpoints in this process, but their link runs through a
 * child process twice: a local pair is sent to the child, which sends both ends back. A message
 * from one end crosses into the child, back here to the local pair, into the child again and
 * back: four socket hops, three bridges, with the bound and order kept end to end.
 */
const echo = fileURLToPath(new URL('./children/echo.js', import.meta.url));
let relay: Channel;
let child: SpawnedProcess;

before(async () => {
  const [here, there] = Channel.pair({ capacity: 64 });
  relay = here;
  child = await spawnProcess(echo, { channels: { relay: there } });
});

after(async () => {
  relay.close();
  // Some tests leave an end open (as callers may): that keeps the connection, and the child, up.
  child.child.kill();
  await child.exited;
});

channelConformance('two processes, through a relay child', async (options) => {
  const [x, y] = Channel.pair(options);
  await relay.sendWait({ type: 1, handles: [x, y] });
  const back = await relay.recv();
  return back.handles as [Channel, Channel];
});
