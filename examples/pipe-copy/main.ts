/**
 * Copies a file from one worker to another through a data pipe, with a progress bar.
 * The reader worker reads the file straight into the pipe's buffer (beginWrite), the writer worker
 * writes straight out of it (beginRead): the bytes are never copied by the pipe itself.
 *
 *   node dist/examples/pipe-copy/main.js [source] [destination]
 *
 * Without a source it makes a 256 MiB file of random bytes in the temp directory.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TransferListItem, Worker } from 'node:worker_threads';
import { Channel, DataPipe, exportEndpoint, exportPipeEnd } from 'ftl-ipc';

const scratch = mkdtempSync(join(tmpdir(), 'ftl-ipc-copy-'));
let source = process.argv[2];
if (source === undefined) {
  source = join(scratch, 'source.bin');
  const block = randomFillSync(new Uint8Array(16 * 1024 * 1024));
  writeFileSync(source, '');
  for (let i = 0; i < 16; i++) writeFileSync(source, block, { flag: 'a' });
}
const destination = process.argv[3] ?? join(scratch, 'copy.bin');
const total = statSync(source).size;

const [producer, consumer] = DataPipe.create({ capacityBytes: 4 * 1024 * 1024 });
// Progress reports may be dropped when the bar falls behind: the next one says the same, newer.
const [progress, progressForWriter] = Channel.pair({ capacity: 4 });

function start(role: string, workerData: Record<string, unknown>, transfer: TransferListItem[]) {
  return new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { role, ...workerData },
    transferList: transfer,
  });
}
const pipeIn = exportPipeEnd(producer);
const pipeOut = exportPipeEnd(consumer);
const progressToken = exportEndpoint(progressForWriter);
const started = performance.now();
start('reader', { path: source, pipe: pipeIn }, pipeIn.transfer);
start('writer', { path: destination, pipe: pipeOut, progress: progressToken }, [
  ...pipeOut.transfer,
  ...progressToken.transfer,
]);

let drawn = -1;
const bar = (done: number) => {
  const width = 40;
  const filled = Math.round((done / Math.max(total, 1)) * width);
  if (filled === drawn) return;
  drawn = filled;
  const mib = (n: number) => (n / 2 ** 20).toFixed(0);
  process.stderr.write(
    `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${mib(done)}/${mib(total)} MiB`,
  );
};
for await (const report of progress) {
  bar(Number(new DataView(report.data.buffer, report.data.byteOffset).getBigUint64(0, true)));
}
const seconds = (performance.now() - started) / 1000;
drawn = -1;
bar(total);
process.stderr.write('\n');

const digest = (path: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
const [a, b] = await Promise.all([digest(source), digest(destination)]);
process.stdout.write(
  `copied ${total} bytes in ${seconds.toFixed(2)} s (${(total / seconds / 1e9).toFixed(2)} GB/s); sha256 ${a === b ? 'matches' : 'DIFFERS'}\n`,
);
rmSync(scratch, { recursive: true, force: true });
if (a !== b) process.exitCode = 1;
