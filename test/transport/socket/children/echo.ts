/** Sends every message it receives straight back, handles included: a relay for the tests. */
import { parentChannels } from '../../../../src/index.js';

const { relay } = await parentChannels(['relay']);
for await (const m of relay) await relay.sendWait(m);
relay.close();
