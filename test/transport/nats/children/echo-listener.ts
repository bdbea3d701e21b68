/**
 * A listener for service argv[3] on NATS server argv[2] with secret argv[4]: it echoes every
 * message, and answers type 1 with its resident set size and the CPU time it used (float64s:
 * bytes, microseconds). Prints "ready".
 */
import { type Channel, listen } from '../../../../src/index.js';

const [url, service, secret] = process.argv.slice(2) as [string, string, string];
const listener = await listen({ nats: url, service }, { secret });
async function serve(ch: Channel): Promise<void> {
  for (;;) {
    const m = await ch.recv().catch(() => undefined);
    if (m === undefined) return;
    if (m.type === 1) {
      const data = Buffer.alloc(16);
      const cpu = process.cpuUsage();
      data.writeDoubleLE(process.memoryUsage.rss());
      data.writeDoubleLE(cpu.user + cpu.system, 8);
      await ch.sendWait({ type: 1, data });
    } else await ch.sendWait({ type: m.type, data: m.data });
  }
}
process.stdout.write('ready\n');
for await (const ch of listener) void serve(ch);
