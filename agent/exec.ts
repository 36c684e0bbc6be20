// Runs external programs (qemu-img, ip, genisoimage, ...) with an argument array, never a shell,
// with a deadline, and turns a failure into an error that says what ran and what it printed.
import { execFile } from 'node:child_process';

export class CommandError extends Error {
  constructor(readonly file: string, readonly args: readonly string[], readonly exitCode: number | null, readonly stderr: string, reason?: string) {
    super(`${file} ${args.join(' ')} failed${exitCode !== null ? ` (exit ${exitCode})` : ''}: ${(reason ?? stderr).trim() || 'no output'}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /** Maximum bytes of stdout/stderr kept (default 16 MiB). */
  maxBuffer?: number;
}

export interface RunResult { stdout: string; stderr: string }

/** Runs `file args...` and resolves with its output, or rejects with CommandError. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args as string[], {
      timeout: options.timeoutMs ?? 60_000,
      signal: options.signal,
      env: options.env ?? process.env,
      maxBuffer: options.maxBuffer ?? 16 * 1024 * 1024,
      encoding: 'utf8',
    }, (error, stdout, stderr) => {
      if (!error) return resolve({ stdout, stderr });
      const err = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
      const reason = err.killed ? `timed out after ${options.timeoutMs ?? 60_000} ms` : err.code === 'ENOENT' ? `${file} is not installed` : undefined;
      reject(new CommandError(file, args, typeof err.code === 'number' ? err.code : null, stderr ?? '', reason ?? (stderr ? undefined : err.message)));
    });
  });
}
