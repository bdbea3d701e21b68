/** Sends `count` (argv[2]) messages on `out`, then idles with `idle` open until killed. */
import { parentChannels } from '../../../../src/index.js';

const { out, idle } = await parentChannels(['out', 'idle']);
const count = Number(process.argv[2]);
for (let i = 0; i < count; i++) await out.sendWait({ type: i, data: new Uint8Array(100) });
await idle.recv();
