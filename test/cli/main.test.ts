import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = `${root}dist/src/cli/main.js`;
const COMMANDS = ['gen', 'compat', 'run'];

async function cli(...argv: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { status, out, err };
}

describe('ftl-ipc help and version', () => {
  it('--help lists every command with a whole sentence', async () => {
    const { status, out } = await cli('--help');
    assert.equal(status, 0);
    for (const name of COMMANDS) {
      const line = out.split('\n').find((l) => l.startsWith(`  ${name} `));
      assert.ok(line !== undefined, `${name} is missing from:\n${out}`);
      assert.match(line, /\.$/, `cut short: ${line}`);
    }
    assert.match(out, /--version/);
  });

  it('each command has a complete --help: usage, what it does, options, exit status', async () => {
    for (const name of COMMANDS) {
      for (const flag of ['--help', '-h']) {
        const { status, out } = await cli(name, flag);
        assert.equal(status, 0);
        assert.match(out, new RegExp(`^Usage: ftl-ipc ${name} `));
        assert.match(out, /\nOptions:\n/);
        assert.match(out, /-h, --help/);
        assert.match(out, /\nExit status: 0 [\s\S]*2 bad usage\.\n$/);
      }
    }
    // When run ends by itself is part of its help.
    assert.match((await cli('run', '--help')).out, /ends by itself once every service without/);
  });

  it('--version prints the package version, also from the installed bin', async () => {
    const { version } = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
      version: string;
    };
    assert.deepEqual(await cli('--version'), { status: 0, out: `${version}\n`, err: '' });
    assert.equal((await cli('-v')).out, `${version}\n`);
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, '--version']);
    assert.equal(stdout, `${version}\n`);
  });

  it('an unknown command gets the usage on stderr and status 2', async () => {
    const { status, err } = await cli('serve');
    assert.equal(status, 2);
    assert.match(err, /unknown command "serve"[\s\S]*Commands:/);
  });
});

describe('ftl-ipc help <command>', () => {
  it('help alone is --help; help <command> is <command> --help', async () => {
    assert.deepEqual(await cli('help'), await cli('--help'));
    for (const name of COMMANDS) {
      const { status, out, err } = await cli('help', name);
      assert.equal(status, 0);
      assert.equal(err, '');
      assert.equal(out, (await cli(name, '--help')).out);
    }
    assert.match((await cli('--help')).out, /ftl-ipc help \[<command>\]/);
  });

  it('help for a command that does not exist says so, with status 2', async () => {
    const { status, err } = await cli('help', 'serve');
    assert.equal(status, 2);
    assert.match(err, /^ftl-ipc: unknown command "serve"\n/);
  });
});

describe('ftl-ipc usage mistakes', () => {
  it('an unknown option is named with balanced quotes, then the usage', async () => {
    for (const name of COMMANDS) {
      const { status, err } = await cli(name, '--bogus', 'x');
      assert.equal(status, 2);
      const [first] = err.split('\n');
      assert.equal(
        first,
        `ftl-ipc ${name}: unknown option --bogus; a file name that starts with '-' goes after '--', as in \`-- --bogus\``,
      );
      for (const quote of ["'", '"', '`']) {
        assert.equal(first!.split(quote).length % 2, 1, `unbalanced ${quote} in: ${first}`);
      }
      assert.match(err, new RegExp(`\\n\\nUsage: ftl-ipc ${name} `));
    }
  });

  it('a file that does not exist is one line naming it, not ENOENT and the usage', async () => {
    const missing = '/nonexistent/ftl-ipc/service.yaml';
    for (const argv of [
      ['gen', missing],
      ['compat', '--baseline', missing, missing],
    ]) {
      const { status, out, err } = await cli(...argv);
      assert.equal(status, 2, err);
      assert.equal(out, '');
      assert.equal(err, `ftl-ipc ${argv[0]}: ${missing} does not exist\n`);
    }
    const run = await cli('run', missing);
    assert.equal(run.status, 1);
    assert.equal(run.err, `ftl-ipc run: ${missing} does not exist\n`);
  });
});
