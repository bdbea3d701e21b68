/**
 * Connects to service argv[3] on NATS server argv[2] with secret argv[5], sends argv[4]
 * messages, idles until killed.
 */
import { connect } from '../../../../src/index.js';

const [url, service, count, secret] = process.argv.slice(2);
const ch = await connect(
  { nats: url as string, service: service as string },
  { heartbeatMs: 100, secret: secret as string },
);
for (let i = 0; i < Number(count); i++) await ch.sendWait({ type: i, data: new Uint8Array(100) });
await ch.recv();
