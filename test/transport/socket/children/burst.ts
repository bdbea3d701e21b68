/** Sends argv[2] messages of 1 KiB on `out` without waiting, closes every channel it got, returns. */
import { parentChannels } from '../../../../src/index.js';

const channels = await parentChannels();
const out = channels.out;
if (out === undefined) throw new Error('no out channel');
const count = Number(process.argv[2]);
for (let i = 0; i < count; i++) out.send({ type: i, data: new Uint8Array(1024) });
for (const ch of Object.values(channels)) ch.close();
