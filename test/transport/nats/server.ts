/**
 * Real nats-server processes for the tests, on free loopback ports. `.ci/run` installs Debian's
 * nats-server; when it is missing the NATS tests fail in CI and are skipped elsewhere.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function findServer(): string | undefined {
  for (const candidate of [process.env.NATS_SERVER, 'nats-server', '/usr/sbin/nats-server']) {
    if (candidate === undefined) continue;
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {}
  }
  return undefined;
}

export const natsServerBinary = findServer();
const MISSING =
  'nats-server is not installed (apt-get install nats-server, as .ci/run does; or set NATS_SERVER)';
if (natsServerBinary === undefined && process.env.CI === 'true') {
  throw new Error(`the NATS tests need a real server: ${MISSING}`);
}
/** For `describe(name, natsSuite, ...)`: skipped, saying why, when there is no server here. */
export const natsSuite = { skip: natsServerBinary === undefined ? MISSING : false } as const;

export interface NatsServer {
  readonly url: string;
  readonly clusterUrl: string | undefined;
  readonly monitor: string;
  readonly process: ChildProcess;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
}

interface Ports {
  nats: string[];
  monitoring: string[];
  cluster?: string[];
}

async function readPorts(dir: string, pid: number, exited: () => boolean): Promise<Ports> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const files = await readdir(dir);
    const name = files.find((f) => f.endsWith(`_${pid}.ports`));
    if (name !== undefined) {
      try {
        return JSON.parse(await readFile(join(dir, name), 'utf8')) as Ports;
      } catch {}
    }
    if (exited()) throw new Error(`nats-server ${pid} exited before it listened`);
    if (Date.now() > deadline) throw new Error(`nats-server ${pid} did not listen within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts one nats-server on 127.0.0.1 (random ports); with `cluster`, a member of it. */
export async function startNats(
  cluster?: { name: string; routes: string[] },
  extraArgs: string[] = [],
): Promise<NatsServer> {
  if (natsServerBinary === undefined) throw new Error(MISSING);
  const dir = await mkdtemp(join(tmpdir(), 'ftl-nats-'));
  const args = ['-a', '127.0.0.1', '-p', '-1', '-m', '-1', '--ports_file_dir', dir, ...extraArgs];
  if (cluster !== undefined) {
    args.push('--cluster_name', cluster.name, '--cluster', 'nats://127.0.0.1:-1');
    if (cluster.routes.length > 0) args.push('--routes', cluster.routes.join(','));
  }
  const child = spawn(natsServerBinary, args, { stdio: 'ignore' });
  // A test process that ends without its after() hooks (a timeout, an uncaught error) must not
  // leave the server behind.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const ports = await readPorts(dir, child.pid as number, () => exited).catch(async (err) => {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  const end = async (signal: NodeJS.Signals) => {
    process.off('exit', reap);
    if (!exited) child.kill(signal);
    await exit;
    await rm(dir, { recursive: true, force: true });
  };
  return {
    url: ports.nats[0] as string,
    clusterUrl: ports.cluster?.[0],
    monitor: ports.monitoring[0] as string,
    process: child,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
  };
}

/** A cluster of `n` servers with routes, once every server sees the other n - 1. */
export async function startCluster(n = 3): Promise<NatsServer[]> {
  const name = `ftl${process.pid}`;
  const first = await startNats({ name, routes: [] });
  const servers = [first];
  for (let i = 1; i < n; i++) {
    servers.push(await startNats({ name, routes: [first.clusterUrl as string] }));
  }
  const deadline = Date.now() + 15_000;
  for (const s of servers) {
    for (;;) {
      const routez = (await (await fetch(`${s.monitor}/routez`)).json()) as { num_routes: number };
      if (routez.num_routes >= n - 1) break;
      if (Date.now() > deadline) throw new Error(`the NATS cluster did not form within 15 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return servers;
}
