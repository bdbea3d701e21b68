/**
 * The second hop of chain.test.ts, a child process: passes every handle its parent (the first
 * hop's worker) sends it on over NATS, to the test's listener of service `chain`.
 */
import { connect, parentChannels } from '../../../src/index.js';

const { up } = await parentChannels(['up']);
const link = await connect(
  { nats: process.argv[2] as string, service: 'chain' },
  { insecure: true },
);
for await (const m of up) await link.sendWait(m);
link.close();
