// Test helpers for running the BUILT n0ctl (dist/cli/n0ctl.js) as a user would: a fresh node
// process per command, arguments as an array, every child killed by its owner.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'cli', 'n0ctl.js');

/** Rebuilds dist/ when any cli/ or api/ source is newer than the built CLI. */
export function ensureBuilt(): void {
  const newest = (dir: string): number => Math.max(0, ...fs.readdirSync(dir, { withFileTypes: true }).map((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'generated' || e.name === 'node_modules' || e.name === 'testing' ? 0 : newest(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? fs.statSync(p).mtimeMs : 0;
  }));
  const built = fs.existsSync(CLI) ? fs.statSync(CLI).mtimeMs : 0;
  if (built >= Math.max(newest(path.join(ROOT, 'cli')), newest(path.join(ROOT, 'api')))) return;
  // Other folders may be mid-edit and fail to type-check; tsc still emits, and we check our output.
  spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore', timeout: 240_000 });
  if (!fs.existsSync(CLI) || fs.statSync(CLI).mtimeMs <= built) throw new Error('building dist/cli/n0ctl.js failed; run npm run build');
}

export interface CliResult { code: number | null; stdout: string; stderr: string; ms: number }

/** Runs n0ctl commands in `cwd` with exactly `env` (nothing leaks from the developer's shell). */
export class CliRunner {
  private readonly children = new Set<ChildProcess>();
  constructor(private readonly cwd: string, private readonly env: NodeJS.ProcessEnv, private readonly prefixArgs: string[] = []) {}

  run(args: string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const child = this.spawn(args);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => { stdout += d; });
      child.stderr!.on('data', (d) => { stderr += d; });
      const timeoutMs = options.timeoutMs ?? 30_000;
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`n0ctl ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`)); }, timeoutMs);
      child.on('error', (e) => { clearTimeout(timer); reject(e); });
      child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, ms: Date.now() - started }); });
      child.stdin!.end(options.stdin ?? '');
    });
  }

  /** A child with piped stdio that the caller drives; killed by killAll() if still running. */
  spawn(args: string[]): ChildProcess {
    const child = spawn(process.execPath, [CLI, ...this.prefixArgs, ...args], { cwd: this.cwd, env: this.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('close', () => this.children.delete(child));
    return child;
  }

  killAll(): void {
    for (const c of this.children) c.kill('SIGKILL');
  }
}
