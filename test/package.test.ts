/**
 * The package as a user gets it: packed from a checkout that was never built, installed into a
 * fresh project, then used from there (a worker, a child process, `npx ftl-ipc gen`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../', import.meta.url));
/** What `npm pack` needs of a checkout: the rest (tests, benchmarks, examples) is not shipped. */
const SOURCES = [
  'package.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'README.md',
  'src',
  'docs',
];

/** Runs a command with npm's own variables removed, so that an outer `npm test` does not leak in. */
async function sh(command: string, args: readonly string[], cwd: string) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_')),
  );
  return promisify(execFile)(command, args, {
    cwd,
    env: { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false' },
  });
}

const ECHO = `import { parentChannels } from 'ftl-ipc';
const { relay } = await parentChannels(['relay']);
for await (const m of relay) relay.send(m);
relay.close();
`;

const MAIN = `import { Channel, spawnProcess, spawnWorker } from 'ftl-ipc';
const got = [];
for (const start of [spawnWorker, spawnProcess]) {
  const [mine, theirs] = Channel.pair();
  const { exited } = await start(new URL('./echo.js', import.meta.url), { channels: { relay: theirs } });
  mine.send({ type: 42 });
  got.push(\`\${start.name} \${(await mine.recv()).type}\`);
  mine.close();
  await exited;
}
console.log(got.join(', '));
`;

/** The installed package serves the live page's files. */
const PAGE = `import { ObserveServer } from 'ftl-ipc';
const server = await ObserveServer.start({ spec: { name: 'x', services: [] }, status: () => [] });
const codes = [];
for (const path of ['/', '/page.js']) codes.push((await fetch(new URL(path, server.url))).status);
console.log(codes.join(' '));
await server.close();
`;

/** Names only generated code and tools use: on `ftl-ipc/wire`, not on the main entry. */
const WIRE_ONLY = [
  'FLAG_ERROR',
  'FLAG_REPLY',
  'HEADER_BYTES',
  'VERSION',
  'Reader',
  'Writer',
  'MessageTable',
  'encodeMessage',
  'decodeMessage',
  'encodeReply',
  'runtimeDescriptors',
  'RpcClient',
  'RpcServer',
  'invalidRequestChannel',
  'handlerErrorChannel',
];

const ENTRIES = `const main = Object.keys(await import('ftl-ipc'));
const wire = Object.keys(await import('ftl-ipc/wire'));
console.log(JSON.stringify({ main, wire }));
`;

const TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    target: 'es2022',
    strict: true,
    noEmit: true,
    types: ['node'],
  },
  include: ['typed.ts', 'ping.generated.ts'],
};

const TYPED = `import { Channel, isIpcError, type ServiceEnv, spawnWorker } from 'ftl-ipc';
import { loadIdl } from 'ftl-ipc/idl';
import { PingClient } from './ping.generated.js';
export async function main(env: ServiceEnv<{ n: number }>): Promise<number> {
  const [mine, theirs] = Channel.pair({ capacity: 4 });
  const { worker } = await spawnWorker(new URL('./echo.js', import.meta.url), { channels: { relay: theirs } });
  void worker.terminate();
  void loadIdl(['ping.yaml']);
  const client = new PingClient(mine);
  try {
    return (await client.ping({ value: env.config.n })).value;
  } catch (error) {
    return isIpcError(error, 'TIMEOUT') ? -1 : -2;
  }
}
`;

const IDL = `name: ping
protocols:
  ping:
    - { name: ping, type: call, params: [{ name: value, type: int32 }], returns: [{ name: value, type: int32 }] }
`;

it('packs an unbuilt checkout, installs it quietly and runs a worker, a child and the CLI', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'ftl-ipc-pack-'));
  try {
    const clean = join(tmp, 'checkout');
    for (const entry of SOURCES)
      await cp(join(root, entry), join(clean, entry), { recursive: true });
    await symlink(join(root, 'node_modules'), join(clean, 'node_modules'), 'dir');
    // No dist/ here: prepack builds it.
    const packed = await sh('npm', ['pack', '--json', '--pack-destination', tmp], clean);
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[\n'))) as {
      filename: string;
      files: { path: string }[];
    }[];
    const files = new Set(info!.files.map((f) => f.path));
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
      exports: Record<string, string | Record<string, string>>;
      bin: Record<string, string>;
      version: string;
    };
    const named = [
      ...Object.values(pkg.exports).flatMap((e) =>
        typeof e === 'string' ? [e] : Object.values(e),
      ),
      ...Object.values(pkg.bin),
    ].map((p) => p.replace(/^\.\//, ''));
    for (const path of named) assert.ok(files.has(path), `${path} is not in the package`);
    // Source maps ship with the sources they point to.
    const map = JSON.parse(
      await readFile(join(clean, 'dist/src/channel/channel.js.map'), 'utf8'),
    ) as { sources: string[] };
    assert.ok(files.has(join('dist/src/channel', map.sources[0]!)), map.sources[0]);
    assert.ok(![...files].some((f) => f.startsWith('dist/test/')), 'tests are not shipped');
    // The live page is served from the package as plain files, no build step.
    for (const page of ['index.html', 'page.js', 'page.css']) {
      assert.ok(files.has(`src/observe/page/${page}`), `the page's ${page} is not in the package`);
    }

    const project = join(tmp, 'project');
    await mkdir(project);
    await writeFile(
      join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    );
    const install = await sh(
      'npm',
      ['install', '--prefer-offline', '--no-audit', join(tmp, info!.filename)],
      project,
    );
    assert.doesNotMatch(install.stderr, /warn/i, install.stderr);

    await writeFile(join(project, 'echo.js'), ECHO);
    await writeFile(join(project, 'main.js'), MAIN);
    const ran = await sh(process.execPath, ['main.js'], project);
    assert.equal(ran.stdout, 'spawnWorker 42, spawnProcess 42\n');

    await writeFile(join(project, 'ping.yaml'), IDL);
    const gen = await sh('npx', ['--no-install', 'ftl-ipc', 'gen', 'ping.yaml'], project);
    assert.match(gen.stdout, /wrote .*ping\.generated\.ts/);
    const generated = await readFile(join(project, 'ping.generated.ts'), 'utf8');
    assert.match(generated, /@generated/);
    assert.match(generated, /from 'ftl-ipc'/);
    assert.match(generated, /from 'ftl-ipc\/wire'/);
    // The wire's internals are on the ftl-ipc/wire entry, and only there.
    const entries = await sh(process.execPath, ['--input-type=module', '-e', ENTRIES], project);
    const { main, wire } = JSON.parse(entries.stdout) as { main: string[]; wire: string[] };
    for (const name of WIRE_ONLY) {
      assert.ok(wire.includes(name), `ftl-ipc/wire has no ${name}`);
      assert.ok(!main.includes(name), `the main entry still exports ${name}`);
    }
    const served = await sh(process.execPath, ['--input-type=module', '-e', PAGE], project);
    assert.equal(served.stdout, '200 200\n');
    const version = await sh('npx', ['--no-install', 'ftl-ipc', '--version'], project);
    assert.equal(version.stdout, `${pkg.version}\n`);
    // A TypeScript project set up as the README says type-checks against the shipped types.
    await symlink(join(root, 'node_modules/@types'), join(project, 'node_modules/@types'), 'dir');
    await writeFile(join(project, 'tsconfig.json'), JSON.stringify(TSCONFIG));
    await writeFile(join(project, 'typed.ts'), TYPED);
    const checked = await sh(join(root, 'node_modules/.bin/tsc'), ['-p', '.'], project).catch(
      (error: { stdout: string }) => assert.fail(`tsc failed:\n${error.stdout}`),
    );
    assert.equal(checked.stdout, '');
    // CommonJS reaches it too, through Node's require of ES modules (Node >= 20.19).
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    if (major > 20 || minor >= 19) {
      const cjs = await sh(
        process.execPath,
        ['-e', "console.log(typeof require('ftl-ipc').spawnWorker)"],
        project,
      );
      assert.equal(cjs.stdout, 'function\n');
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

it('npm ci stays quiet: every dependency install script is approved or denied in allowScripts', async (t) => {
  const listed = await sh('npm', ['install-scripts', 'ls', '--json'], root).catch(
    (error: { stderr?: string }) => error,
  );
  if (!('stdout' in listed)) {
    // npm before 11 has no install-script approvals, and no warning about them either.
    t.skip(`npm install-scripts is not available: ${listed.stderr}`);
    return;
  }
  const { allowScripts } = JSON.parse(listed.stdout as string) as { allowScripts: unknown[] };
  assert.deepEqual(allowScripts, [], 'approve or deny these: npm install-scripts ls');
});
