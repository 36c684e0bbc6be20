// An etcd of the test's own that can be killed and started again on the same ports and data
// (api/store/etcd-process.ts starts throwaway ones; a restart needs the data dir kept).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { freePort } from '../api/store/etcd-process';
import * as os from 'node:os';
import * as path from 'node:path';

export class RestartableEtcd {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-e2e-etcd-'));
  endpoint = '';
  private peer = '';
  private child?: ChildProcess;
  private exited?: Promise<void>;

  static async start(): Promise<RestartableEtcd> {
    const etcd = new RestartableEtcd();
    etcd.endpoint = `http://127.0.0.1:${await freePort()}`;
    etcd.peer = `http://127.0.0.1:${await freePort()}`;
    try {
      await etcd.launch('new');
    } catch (err) {
      await etcd.stop();
      throw err;
    }
    return etcd;
  }

  get pid(): number | undefined { return this.child?.pid; }

  private async launch(state: 'new' | 'existing'): Promise<void> {
    const log = fs.openSync(path.join(this.dir, 'etcd.log'), 'a');
    // Durable (fsync on): the test asserts that what etcd acknowledged survives a crash.
    const child = spawn('etcd', [
      '--name', 'e2e', '--data-dir', path.join(this.dir, 'data'),
      '--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', this.peer, '--initial-advertise-peer-urls', this.peer,
      '--initial-cluster', `e2e=${this.peer}`, '--initial-cluster-state', state, '--initial-cluster-token', path.basename(this.dir),
    ], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.child = child;
    this.exited = new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.once('error', () => resolve()); });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`etcd exited at start: ${this.logTail()}`);
      try {
        const res = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`etcd did not become healthy within 30 s: ${this.logTail()}`);
  }

  logTail(): string {
    try { return fs.readFileSync(path.join(this.dir, 'etcd.log'), 'utf8').slice(-1500); } catch { return ''; }
  }

  /** kill -9, like a crash or a power cut of the etcd process. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** Starts it again on the same ports and data. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch('existing');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
