/**
 * Sends argv[2] messages of 100 bytes on `out`, each with sendWait, and closes it. Then, by
 * argv[3]: 'exit' calls process.exit(0) at once, 'flush' awaits flushSockets() first, 'return'
 * just returns (nothing else keeps the process alive).
 */
import { flushSockets, parentChannels } from '../../../../src/index.js';

const { out } = await parentChannels(['out']);
const count = Number(process.argv[2]);
for (let i = 0; i < count; i++) await out.sendWait({ type: i, data: new Uint8Array(100) });
out.close();
if (process.argv[3] === 'flush') await flushSockets();
if (process.argv[3] !== 'return') process.exit(0);
