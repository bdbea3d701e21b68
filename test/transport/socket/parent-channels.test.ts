import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Channel, spawnProcess, spawnWorker } from '../../../src/index.js';
import { child } from './helpers.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));

/** What a user's code does with it, type-checked as `tsc --init` would: noUncheckedIndexedAccess. */
const TYPED = `import { type Channel, parentChannels } from 'ftl-ipc';
const { jobs, events } = await parentChannels(['jobs', 'events']);
jobs.send({ type: 1 });
const held: Channel = events;
held.close();
// @ts-expect-error: a name not asked for is not a key of the result.
void (await parentChannels(['jobs'])).events;
// Without names, a channel may be missing: the compiler says so.
const { other } = await parentChannels();
// @ts-expect-error: 'other' is possibly 'undefined'.
other.close();
`;

describe('parentChannels with the names it expects', { timeout: 60_000 }, () => {
  it('types each named channel as a Channel under noUncheckedIndexedAccess', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-ipc-typed-'));
    try {
      await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
      await writeFile(join(dir, 'worker.ts'), TYPED);
      const compilerOptions = {
        module: 'nodenext',
        target: 'es2022',
        strict: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        typeRoots: [join(root, 'node_modules/@types')],
        paths: { 'ftl-ipc': [join(root, 'dist/src/index.d.ts')] },
      };
      await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions }));
      const tsc = join(root, 'node_modules/.bin/tsc');
      const checked = await promisify(execFile)(tsc, ['-p', dir]).catch(
        (error: { stdout: string }) => assert.fail(`tsc failed:\n${error.stdout}`),
      );
      assert.equal(checked.stdout, '');
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  const starts = {
    'a child process': (channels: Record<string, Channel>, arg: string) =>
      spawnProcess(child('asks'), { channels, args: [arg] }),
    'a worker thread': (channels: Record<string, Channel>, arg: string) =>
      spawnWorker(child('asks'), { channels, argv: [arg] }),
  };
  for (const [how, start] of Object.entries(starts)) {
    /** Starts `asks` in `how` with channels report and jobs; what it reports for `names`. */
    const ask = async (names: string[]): Promise<string> => {
      const [report, reportThere] = Channel.pair();
      const [jobs, jobsThere] = Channel.pair();
      const { exited } = await start(
        { report: reportThere, jobs: jobsThere },
        JSON.stringify(names),
      );
      const text = new TextDecoder().decode((await report.recv()).data);
      report.close();
      jobs.close();
      await exited;
      return text;
    };

    it(`in ${how}: a name the parent did not give is an INVALID_ARGUMENT naming what it gave`, async () => {
      assert.equal(
        await ask(['jobs', 'events', 'log']),
        'INVALID_ARGUMENT: parentChannels: no channel named "events", "log" was given; the parent gave "report", "jobs"',
      );
    });

    it(`in ${how}: every channel given is in the result, named or not`, async () => {
      assert.equal(await ask(['jobs']), 'report,jobs');
    });
  }
});
