// @ts-check
/**
 * Mutation testing of the core (docs/testing.md): src/channel, src/wire and the socket and
 * worker transports. Each mutant runs only the test files that cover it (tap runner, perTest
 * coverage), in the order below, and stops at the first failing file.
 *
 * The 3,500 mutants of these folders take hours here, so by default a sample is mutated: every
 * file is cut into blocks of BLOCK lines and a fixed fraction of the blocks is picked by a seeded
 * hash, the same blocks every run. STRYKER_SAMPLE (0 to 1, default 0.05) and STRYKER_SEED
 * (default 1) change it; STRYKER_SAMPLE=1 mutates everything.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const FOLDERS = ['src/channel', 'src/wire', 'src/transport/socket', 'src/transport/worker'];
const BLOCK = 10;
const sample = Number(process.env.STRYKER_SAMPLE ?? 0.05);
const seed = process.env.STRYKER_SEED ?? '1';

/** FNV-1a of `text` with a murmur3 finish (so neighbouring blocks are not picked together). */
function hash(text) {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text)) h = Math.imul(h ^ byte, 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
}

const files = FOLDERS.flatMap((dir) =>
  readdirSync(dir)
    .filter((name) => name.endsWith('.ts') && name !== 'index.ts')
    .map((name) => join(dir, name)),
);

const mutate =
  sample >= 1
    ? files
    : files.flatMap((file) => {
        const lines = readFileSync(file, 'utf8').split('\n').length;
        const blocks = [];
        for (let start = 1; start <= lines; start += BLOCK) {
          const end = Math.min(start + BLOCK - 1, lines);
          if (hash(`${seed}:${file}:${start}`) < sample) blocks.push(`${file}:${start}-${end}`);
        }
        return blocks;
      });

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate,
  testRunner: 'tap',
  tap: {
    testFiles: [
      'dist/test/channel/*.test.js',
      'dist/test/wire/*.test.js',
      'dist/test/transport/**/*.test.js',
      'dist/test/pipe/*.test.js',
    ],
    forceBail: true,
  },
  buildCommand: 'npx tsc -p tsconfig.json',
  // Names no file on purpose: Stryker rewrites tsconfig files with the TypeScript 5 API, which
  // TypeScript 7 lacks, and this project's tsconfig has no references or extends to rewrite.
  tsconfigFile: 'tsconfig.stryker-none.json',
  coverageAnalysis: 'perTest',
  // Mutants run at module load would need every test file each: left out of the score.
  ignoreStatic: true,
  concurrency: 2,
  timeoutMS: 10_000,
  ignorePatterns: ['dist', 'bench'],
  tempDirName: 'dist/.stryker-tmp',
  cleanTempDir: 'always',
  reporters: ['clear-text', 'progress-append-only', 'json', 'html'],
  jsonReporter: { fileName: 'dist/mutation/mutation.json' },
  htmlReporter: { fileName: 'dist/mutation/index.html' },
  clearTextReporter: { allowColor: false, reportMutants: false, reportTests: false },
};
