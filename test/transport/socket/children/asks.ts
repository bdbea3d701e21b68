/**
 * Asks parentChannels for the names in argv[2] (JSON) and reports on `report` what it got: the
 * names, or the error's code and message. The same module in a worker thread and a child process.
 */
import { isIpcError, parentChannels } from '../../../../src/index.js';

const asked = JSON.parse(process.argv[2] ?? '[]') as string[];
const { report } = await parentChannels(['report']);
let text: string;
try {
  text = Object.keys(await parentChannels(asked)).join(',');
} catch (error) {
  if (!isIpcError(error)) throw error;
  text = `${error.code}: ${error.message}`;
}
await report.sendWait({ type: 1, data: new TextEncoder().encode(text) });
report.close();
