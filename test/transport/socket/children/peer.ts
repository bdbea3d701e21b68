/** Sends `count` (argv[2]) messages on `link`, reads as many, and reports their type sum. */
import { parentChannels } from '../../../../src/index.js';

const { link, report } = await parentChannels(['link', 'report']);
const count = Number(process.argv[2]);
const sending = (async () => {
  for (let i = 0; i < count; i++) await link.sendWait({ type: i });
})();
let sum = 0;
let order = true;
for (let i = 0; i < count; i++) {
  const m = await link.recv();
  if (m.type !== i) order = false;
  sum += m.type;
}
await sending;
await report.sendWait({ type: order ? sum : 0xffff_ffff });
link.close();
report.close();
