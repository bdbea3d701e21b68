/** A worker made with new Worker that asks for parent channels: it reports what it got. */
import { parentPort } from 'node:worker_threads';
import { parentChannels } from '../../../../src/index.js';

try {
  await parentChannels();
  parentPort!.postMessage('no error');
} catch (error) {
  parentPort!.postMessage({ code: (error as { code?: string }).code, message: String(error) });
}
