// n0stack server processes for the fault tests: `n0stack agent` and `n0stack controllers` as
// child processes, so a test can kill -9 them like a crash. Runs the built CLI when dist/ is
// newer than every source file, else the TypeScript sources through hack/swc-register.js, so a
// test never exercises stale code.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../api/errors';

const ROOT = path.resolve(__dirname, '..');
const SOURCE_DIRS = ['api', 'agent', 'controllers', 'cli'];

function newestSourceMtime(): number {
  let newest = 0;
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
    }
  };
  for (const d of SOURCE_DIRS) walk(path.join(ROOT, d));
  return newest;
}

/** The node argv prefix that runs `n0stack` from this tree's current sources. */
export function n0stackCommand(): string[] {
  const built = path.join(ROOT, 'dist/cli/n0stack.js');
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs > newestSourceMtime()) return [built];
  const register = path.join(ROOT, 'hack/swc-register.js');
  if (!fs.existsSync(register)) throw new Error(`${built} is older than the sources and ${register} is missing: run npm run build`);
  return ['--require', register, path.join(ROOT, 'cli/n0stack.ts')];
}

export interface N0stackProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly log: string;
  /** Resolves once the process printed a line matching `ready` (or rejects when it exited first). */
  readonly ready: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** SIGKILL, like a crash; resolves when the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

const ARG = /^[A-Za-z0-9_./:,=@+-]*$/;

/**
 * Starts `n0stack <args>` with stdout/stderr appended to `logFile`; `ready` is a pattern its
 * output shows once it serves. Arguments are plain tokens (no shell is involved, but a test
 * should not pass anything surprising to a server either).
 */
export function startN0stack(args: string[], options: { logFile: string; ready: RegExp; readyTimeoutMs?: number; env?: NodeJS.ProcessEnv }): N0stackProcess {
  for (const a of args) if (!ARG.test(a)) throw new InvalidArgumentError(`argument ${JSON.stringify(a)} has unexpected characters`, 'args');
  const out = fs.openSync(options.logFile, 'a');
  const child = spawn(process.execPath, [...n0stackCommand(), ...args], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, N0STACK_LOG_LEVEL: 'info', ...options.env },
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  let seen = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timeoutMs = options.readyTimeoutMs ?? 60_000;
    const timer = setTimeout(() => reject(new Error(`n0stack ${args[0]} printed nothing matching ${options.ready} within ${timeoutMs} ms; log: ${options.logFile}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      fs.writeSync(out, chunk);
      if (seen !== 'ready') {
        seen = (seen + chunk.toString('utf8')).slice(-4096);
        if (options.ready.test(seen)) { seen = 'ready'; clearTimeout(timer); resolve(); }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    // 'close' comes after the last output chunk; 'exit' may come before it.
    child.once('close', () => fs.closeSync(out));
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      if (seen !== 'ready') reject(new Error(`n0stack ${args[0]} exited (${signal ?? `code ${code}`}) before it was ready; log: ${options.logFile}\n${tail(options.logFile)}`));
    });
  });
  ready.catch(() => undefined);
  const alive = () => child.exitCode === null && child.signalCode === null;
  const kill = async (signal: NodeJS.Signals, graceMs = 10_000) => {
    if (!alive()) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return {
    child, pid: child.pid!, log: options.logFile, ready, exited, alive,
    kill9: () => kill('SIGKILL'),
    stop: (graceMs?: number) => kill('SIGTERM', graceMs),
  };
}

export function tail(file: string, bytes = 3000): string {
  try { return fs.readFileSync(file, 'utf8').slice(-bytes); } catch { return ''; }
}
