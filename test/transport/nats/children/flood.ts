/**
 * An attacker: argv[4] connect requests to service argv[3] on NATS server argv[2] that look
 * valid (the reply subject and body `connect` makes) and are never followed by a handshake.
 * Prints the milliseconds it took once the server has them all.
 */
import { connect as natsConnect, nuid } from '@nats-io/transport-node';

const [url, service, count] = process.argv.slice(2) as [string, string, string];
const nc = await natsConnect({ servers: url });
const started = Date.now();
for (let i = 0; i < Number(count); i++) {
  nc.publish(`ftl-ipc.svc.${service}`, 'ftl-ipc nats 1 aes-256-gcm', {
    reply: `ftl-ipc.c.${nuid.next()}.r`,
  });
  if (i % 1000 === 999) await nc.flush();
}
await nc.flush();
process.stdout.write(`${Date.now() - started}\n`);
await nc.close();
