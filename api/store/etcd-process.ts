// Starts a throwaway etcd (Debian's etcd-server) on free loopback ports, for tests and the store
// benchmark; like hack/etcd.js, but owned by the caller, who must stop() it (which also removes
// its data directory). Lives outside testing/ because bench/store.ts is built with it.
import { spawn } from 'node:child_process';
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-etcd-'));
  const client = `http://127.0.0.1:${await freePort()}`;
  const peer = `http://127.0.0.1:${await freePort()}`;
  const logFd = fs.openSync(path.join(dir, 'etcd.log'), 'a');
  const child = spawn('etcd', [
    '--name', 'test', '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`, '--initial-cluster-state', 'new',
    ...(options.durable ? [] : ['--unsafe-no-fsync']),
  ], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let spawnError: Error | undefined;
  child.once('error', (err) => { spawnError = err; });

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  while (Date.now() < deadline) {
    if (spawnError || child.exitCode !== null) {
      const tail = fs.existsSync(path.join(dir, 'etcd.log')) ? fs.readFileSync(path.join(dir, 'etcd.log'), 'utf8').slice(-2000) : '';
      await stop();
      throw new Error(`etcd did not start: ${spawnError?.message ?? `exit code ${child.exitCode}`}\n${tail}`);
    }
    try {
      const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return { endpoint: client, stop };
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`etcd at ${client} did not become healthy within ${options.startTimeoutMs ?? 20_000} ms`);
}
