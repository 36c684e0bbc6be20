// The built n0ctl writing into pipes as a shell makes them: a reader that goes away after one
// line (`n0ctl --help | head -1`) and a reader slower than the output (`n0ctl ... | less`).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, ensureBuilt } from './testing/n0ctl';

jest.setTimeout(120_000);

interface Ended { code: number | null; signal: NodeJS.Signals | null; stderr: string }

describe('n0ctl writing into pipes', () => {
  let dir: string;
  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: dir, N0STACK_CONFIG: path.join(dir, 'config') });

  beforeAll(() => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0ctl-stdio-'));
  }, 300_000);
  afterAll(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  /** Runs n0ctl with stdout into `reader`, which gets the child's stdout stream to consume or close. */
  const runInto = (args: string[], reader: (stdout: NodeJS.ReadableStream & { destroy(): void }) => void): Promise<Ended> => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`n0ctl ${args.join(' ')} did not end\n${stderr}`)); }, 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stderr }); });
    reader(child.stdout!);
  });

  const closeAfterFirstLine = (stdout: NodeJS.ReadableStream & { destroy(): void }): void => {
    let seen = '';
    stdout.on('data', (d) => { seen += d; if (seen.includes('\n')) stdout.destroy(); });
  };

  it('--help into a reader that closes after one line ends quietly with 0', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await runInto(['--help'], closeAfterFirstLine);
      expect(r).toEqual({ code: 0, signal: null, stderr: '' });
    }
  });

  it('--help into a pipe closed before anything is written ends quietly with 0 (no EPIPE stack trace)', async () => {
    const r = await runInto(['--help'], (stdout) => stdout.destroy());
    expect(r.stderr).not.toMatch(/EPIPE|at .*\(|Unhandled/);
    expect(r).toEqual({ code: 0, signal: null, stderr: '' });
  });

  it('as a shell pipeline: n0ctl --help | head -1', async () => {
    const shell = spawn('bash', ['-c', `"${process.execPath}" "${CLI}" --help 2>"${dir}/err" | head -1 >/dev/null; echo "\${PIPESTATUS[0]}"`], { env: env(), stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    shell.stdout!.on('data', (d) => { out += d; });
    await new Promise((resolve) => shell.on('close', resolve));
    expect(out.trim()).toBe('0');
    expect(fs.readFileSync(path.join(dir, 'err'), 'utf8')).toBe('');
  });

  it('large output into a slow reader arrives whole (process.exit no longer cuts it at the pipe buffer)', async () => {
    // A do file whose dry-run -o yaml is ~700 KB, ten times a Linux pipe's 64 KiB buffer.
    const tasks = Array.from({ length: 3000 }, (_, i) =>
      `net${i}:\n  type: Network\n  action: ApplyNetwork\n  args: {name: net${i}, ipv4_cidr: 10.${Math.floor(i / 250)}.${i % 250}.0/24, annotations: {note: "${'x'.repeat(100)}"}}\n`);
    const file = path.join(dir, 'big.yaml');
    fs.writeFileSync(file, tasks.join(''));
    const args = ['do', '--dry-run', '-o', 'yaml', file];
    // Into a file, writes are synchronous: that is the whole output.
    const outFile = path.join(dir, 'big.out');
    const fd = fs.openSync(outFile, 'w');
    const whole = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: env(), stdio: ['ignore', fd, 'inherit'] });
      child.on('error', reject);
      child.on('close', resolve);
    }).finally(() => fs.closeSync(fd));
    expect(whole).toBe(0);
    const expected = fs.readFileSync(outFile, 'utf8');
    expect(expected.length).toBeGreaterThan(10 * 65536);

    let received = '';
    const r = await runInto(args, (stdout) => {
      stdout.pause();
      // The reader starts late, so the child has long finished producing when it reads.
      setTimeout(() => { stdout.on('data', (d) => { received += d; }); stdout.resume(); }, 1500);
    });
    expect(r).toEqual({ code: 0, signal: null, stderr: '' });
    expect(received.length).toBe(expected.length);
    expect(received).toBe(expected);
  });
});
