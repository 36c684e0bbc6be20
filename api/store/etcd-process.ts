// Starts a throwaway etcd (Debian's etcd-server) on free loopback ports, for tests and the store
// benchmark; like hack/etcd.js, but owned by the caller, who must stop() it (which also removes
// its data directory). startEtcdCluster() does the same for a several-member cluster, for
// failover tests. Lives outside testing/ because bench/store.ts is built with it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface EtcdProcess {
  endpoint: string;
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** fsync every commit, as a production etcd does (default false: test data need no durability). */
  durable?: boolean;
  startTimeoutMs?: number;
}

/** A loopback port nobody listens on right now (for the processes the tests start). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface Spawned {
  child: ChildProcess;
  exited: Promise<void>;
  spawnError(): Error | undefined;
}

function spawnMember(dir: string, name: string, client: string, peer: string, cluster: string, token: string, durable: boolean | undefined): Spawned {
  fs.mkdirSync(dir, { recursive: true });
  const logFd = fs.openSync(path.join(dir, 'etcd.log'), 'a');
  const child = spawn('etcd', [
    '--name', name, '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', cluster, '--initial-cluster-state', 'new',
    '--initial-cluster-token', token,
    ...(durable ? [] : ['--unsafe-no-fsync']),
  ], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let error: Error | undefined;
  child.once('error', (err) => { error = err; });
  return { child, exited, spawnError: () => error };
}

async function terminate(s: Spawned, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  s.child.kill(signal);
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 5000);
  await s.exited;
  clearTimeout(timer);
}

function logTail(dir: string): string {
  const file = path.join(dir, 'etcd.log');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').slice(-2000) : '';
}

/** Waits until every member answers /health (which needs a cluster leader), or fails with the first log tail. */
async function waitHealthy(members: { dir: string; client: string; spawned: Spawned }[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(members);
  while (pending.size && Date.now() < deadline) {
    for (const m of [...pending]) {
      const err = m.spawned.spawnError();
      if (err || m.spawned.child.exitCode !== null) {
        throw new Error(`etcd at ${m.client} did not start: ${err?.message ?? `exit code ${m.spawned.child.exitCode}`}\n${logTail(m.dir)}`);
      }
      try {
        const res = await fetch(`${m.client}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) pending.delete(m);
      } catch { /* not listening yet */ }
    }
    if (pending.size) await new Promise((r) => setTimeout(r, 100));
  }
  if (pending.size) throw new Error(`etcd at ${[...pending].map((m) => m.client).join(', ')} did not become healthy within ${timeoutMs} ms`);
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-etcd-'));
  const client = `http://127.0.0.1:${await freePort()}`;
  const peer = `http://127.0.0.1:${await freePort()}`;
  const spawned = spawnMember(dir, 'test', client, peer, `test=${peer}`, path.basename(dir), options.durable);
  const stop = async () => {
    await terminate(spawned);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitHealthy([{ dir, client, spawned }], options.startTimeoutMs ?? 20_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint: client, stop };
}

export interface EtcdMember {
  name: string;
  /** Client URL. */
  endpoint: string;
  pid: number;
  /** False once the member's process has exited. */
  readonly alive: boolean;
  /** Sends a signal (default SIGKILL, like a crash) and waits until the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface EtcdCluster {
  /** Client URLs of every member, in member order. */
  endpoints: string[];
  members: EtcdMember[];
  /** Stops every member still running and removes all data directories. */
  stop(): Promise<void>;
}

/**
 * Starts an n-member etcd cluster on loopback ports, each member with its own data directory
 * under one temp dir, for tests of failover (kill a member with SIGKILL mid-write).
 */
export async function startEtcdCluster(size: number, options: StartEtcdOptions = {}): Promise<EtcdCluster> {
  if (!Number.isInteger(size) || size < 1 || size > 7) throw new Error(`an etcd test cluster has 1 to 7 members, not ${size}`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-etcd-cluster-'));
  const specs: { name: string; dir: string; client: string; peer: string }[] = [];
  for (let i = 0; i < size; i++) {
    specs.push({ name: `m${i}`, dir: path.join(root, `m${i}`), client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}` });
  }
  const initialCluster = specs.map((s) => `${s.name}=${s.peer}`).join(',');
  const started = specs.map((s) => ({ ...s, spawned: spawnMember(s.dir, s.name, s.client, s.peer, initialCluster, path.basename(root), options.durable) }));
  const stop = async () => {
    await Promise.all(started.map((m) => terminate(m.spawned)));
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    await waitHealthy(started, options.startTimeoutMs ?? 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  const members: EtcdMember[] = started.map((m) => ({
    name: m.name,
    endpoint: m.client,
    pid: m.spawned.child.pid!,
    get alive() { return m.spawned.child.exitCode === null && m.spawned.child.signalCode === null; },
    kill: (signal: NodeJS.Signals = 'SIGKILL') => terminate(m.spawned, signal),
  }));
  return { endpoints: started.map((m) => m.client), members, stop };
}
