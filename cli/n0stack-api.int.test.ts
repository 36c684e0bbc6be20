// `n0stack api` as a process: TLS unless plaintext is asked for by name, and plaintext only on
// loopback, with a warning nobody can miss.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { n0stackCommand } from '../e2e/procs';
import { ROOT } from './testing/n0ctl';

jest.setTimeout(90_000);

let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-api-proc-')); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs `n0stack api ...` until it exits or prints `until`, then stops it; returns its output. */
function api(args: string[], until?: RegExp, dataDir = path.join(dir, `d${Math.random().toString(36).slice(2)}`)): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...n0stackCommand(), 'api', '--data-dir', dataDir, ...args], {
      cwd: ROOT, env: { PATH: process.env.PATH, HOME: dir, N0STACK_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`n0stack api ${args.join(' ')} neither exited nor matched ${until}: ${output}`)); }, 60_000);
    const onData = (d: Buffer): void => {
      output += d;
      if (until?.test(output)) child.kill('SIGTERM');
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, output }); });
  });
}

test('without a certificate it refuses to start and says how to give one or opt out', async () => {
  const r = await api(['--listen', '127.0.0.1:0']);
  expect(r.code).toBe(1);
  expect(r.output).toMatch(/the facade serves TLS: give --tls-cert and --tls-key .* or --insecure-plaintext to opt out/);
});

test('--insecure-plaintext on a non-loopback address is refused', async () => {
  const r = await api(['--listen', '0.0.0.0:0', '--insecure-plaintext']);
  expect(r.code).toBe(1);
  expect(r.output).toContain('--insecure-plaintext listens on loopback only');
});

test('--insecure-plaintext on loopback serves, after a loud warning', async () => {
  const r = await api(['--listen', '127.0.0.1:0', '--insecure-plaintext'], /facade: 127\.0\.0\.1:\d+ \(PLAINTEXT/);
  expect(r.output).toContain('INSECURE: the facade on 127.0.0.1:0 speaks PLAINTEXT');
  expect(r.output).toMatch(/facade: 127\.0\.0\.1:\d+ \(PLAINTEXT, store: embedded\)/);
});

test('the bootstrap admin token is a 0600 file; one left readable by others is tightened, saying so', async () => {
  const fresh = path.join(dir, 'fresh');
  await api(['--listen', '127.0.0.1:0', '--insecure-plaintext'], /facade: 127\.0\.0\.1:\d+/, fresh);
  expect(fs.statSync(path.join(fresh, 'token')).mode & 0o777).toBe(0o600);
  const token = fs.readFileSync(path.join(fresh, 'token'), 'utf8');
  expect(token).toMatch(/^[\w-]{32}\n$/);

  const old = path.join(dir, 'old');
  fs.mkdirSync(old, { mode: 0o700 });
  fs.writeFileSync(path.join(old, 'token'), 'an-old-token\n', { mode: 0o644 });
  fs.chmodSync(path.join(old, 'token'), 0o644);
  const r = await api(['--listen', '127.0.0.1:0', '--insecure-plaintext'], /facade: 127\.0\.0\.1:\d+/, old);
  expect(r.output).toContain(`${path.join(old, 'token')} was readable by others (mode 644); it is 0600 now`);
  expect(fs.statSync(path.join(old, 'token')).mode & 0o777).toBe(0o600);
  // The same token: tightening keeps it (n0ctl's config still holds it).
  expect(fs.readFileSync(path.join(old, 'token'), 'utf8')).toBe('an-old-token\n');
  // It is never in the process's command line nor its output.
  expect(r.output).not.toContain('an-old-token');
  expect(r.output).not.toContain(token.trim());
});

test('--legacy-listen: loopback only unless forced; on loopback it serves with the chosen role, said loudly', async () => {
  const refused = await api(['--listen', '127.0.0.1:0', '--insecure-plaintext', '--legacy-listen', '0.0.0.0:0']);
  expect(refused.code).toBe(1);
  expect(refused.output).toMatch(/--legacy-listen 0\.0\.0\.0:0: the legacy listener is plaintext without authentication, so it listens on loopback only .*--legacy-listen-force/);
  const served = await api(['--listen', '127.0.0.1:0', '--insecure-plaintext', '--legacy-listen', '127.0.0.1:0', '--legacy-role', 'admin'], /legacy listener: 127\.0\.0\.1:\d+ \(PLAINTEXT/);
  expect(served.output).toMatch(/LEGACY LISTENER on 127\.0\.0\.1:\d+: PLAINTEXT, NO AUTHENTICATION/);
  expect(served.output).toContain('ADMIN (--legacy-role)');
  expect(served.output).toMatch(/legacy listener: 127\.0\.0\.1:\d+ \(PLAINTEXT, no authentication, role admin\)/);
  const badRole = await api(['--listen', '127.0.0.1:0', '--insecure-plaintext', '--legacy-listen', '127.0.0.1:0', '--legacy-role', 'node']);
  expect(badRole.code).not.toBe(0);
  expect(badRole.output).toMatch(/--legacy-role.*node.*(admin, viewer|Allowed choices are admin, viewer)/);
});
