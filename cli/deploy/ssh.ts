// The system's OpenSSH client, with argument arrays: it brings the user's known_hosts, agent,
// ~/.ssh/config and ProxyJump for free. One master connection (ControlMaster) carries every step,
// so a deploy pays for one handshake; the master is our child process and ends with us.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';

export interface SshTarget {
  host: string;
  user: string;
  port?: number;
  /** -i: the private key. */
  identity?: string;
  /** -o options as ssh takes them ("Key=Value"); they win over n0ctl's defaults. */
  options?: string[];
  /** The ssh program (tests point it elsewhere; default "ssh" from PATH). */
  program?: string;
}

export interface ExecResult { code: number; stdout: string; stderr: string }

/** A process's end as one exit code: a signal n counts as 128 + n, as shells report it. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? os.constants.signals[signal] ?? 0 : 0);
}

export class SshSession {
  private master?: ChildProcess;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0deploy-'));
  private readonly control = path.join(this.dir, 'cm');
  constructor(readonly target: SshTarget) {}

  get destination(): string { return `${this.target.user}@${this.target.host}`; }

  /** Everything before the remote command; the user's -o first, since ssh keeps an option's first value. */
  baseArgs(): string[] {
    const t = this.target;
    return [
      ...(t.options ?? []).flatMap((o) => ['-o', o]),
      ...(t.identity ? ['-i', t.identity, '-o', 'IdentitiesOnly=yes'] : []),
      ...(t.port ? ['-p', String(t.port)] : []),
      '-l', t.user, '-T', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'ServerAliveInterval=15',
      '-o', `ControlPath=${this.control}`,
    ];
  }

  /**
   * Opens the master connection; resolves once it carries sessions, rejects with ssh's own words
   * (exit 255 and its stderr) when it cannot log in.
   */
  async open(): Promise<void> {
    const child = spawn(this.target.program ?? 'ssh', [...this.baseArgs(), '-M', '-N', '-o', 'ControlPersist=no', '--', this.target.host], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.master = child;
    // process.exit skips close(); the master must not outlive n0ctl.
    const killOnExit = (): void => { child.kill('SIGTERM'); };
    process.once('exit', killOnExit);
    child.once('exit', () => process.removeListener('exit', killOnExit));
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-4000); });
    const exited = new Promise<number>((resolve) => {
      child.once('error', (e) => { stderr += e.message; resolve(255); });
      child.once('exit', (code, signal) => resolve(exitCodeOf(code, signal)));
    });
    // ssh makes the control socket only after it has logged in.
    for (;;) {
      const done = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 50))]);
      if (done !== undefined) {
        this.master = undefined;
        throw new SshConnectError(this.destination, done, stderr.trim());
      }
      if (fs.existsSync(this.control)) return;
    }
  }

  /**
   * Runs `command` (one string, read by the login shell on the VM) over the master connection.
   * Output goes to `stdout`/`stderr` as it comes when given, and is collected otherwise; `input`
   * is piped to the command's stdin (nothing else: stdin is empty).
   */
  exec(command: string, io: { stdout?: Writable; stderr?: Writable; input?: Readable } = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.target.program ?? 'ssh', [...this.baseArgs(), '-o', 'ControlMaster=no', '--', this.target.host, command], {
        stdio: [io.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      });
      const collected = { stdout: '', stderr: '' };
      for (const name of ['stdout', 'stderr'] as const) {
        const sink = io[name];
        child[name]!.on('data', (d: Buffer) => { if (sink) sink.write(d); else collected[name] += d.toString('utf8'); });
      }
      if (io.input) {
        // The command may end before reading everything (a failing mkdir); that is its exit code's story.
        child.stdin!.on('error', () => undefined);
        io.input.once('error', (e) => { child.kill('SIGTERM'); reject(e); });
        io.input.pipe(child.stdin!);
      }
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code: exitCodeOf(code, signal), ...collected }));
    });
  }

  close(): void {
    this.master?.kill('SIGTERM');
    this.master = undefined;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export class SshConnectError extends Error {
  constructor(readonly destination: string, readonly exitCode: number, readonly stderr: string) {
    const hint = /Host key verification failed/.test(stderr)
      ? ' (the VM\'s host key is not in known_hosts: for a new VM add -o StrictHostKeyChecking=accept-new)'
      : '';
    super(`ssh to ${destination} failed (exit ${exitCode}): ${stderr || 'no message from ssh'}${hint}`);
  }
}
