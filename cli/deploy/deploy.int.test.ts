// `n0ctl deploy` (the built CLI) against a real OpenSSH server on loopback: Debian's sshd with its
// own host key, an authorized key made here, and HOME pointed at a folder of the test (SetEnv),
// so the bootstrap record and what the steps write stay inside it. --host and --user are given,
// so no facade is involved; e2e/deploy-cases.ts (run by e2e/seed-ssh.test.ts) runs the same against a VM found through one.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../../api/store/etcd-process';
import { CliRunner, ensureBuilt } from '../testing/n0ctl';
import { loadDeployPlan } from './plan';

jest.setTimeout(120_000);

const SSHD = '/usr/sbin/sshd';

let dir: string;
let home: string;
let app: string;
let port: number;
let sshd: ChildProcess;
let sshdLog = '';
let cli: CliRunner;

function keygen(file: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
}

beforeAll(async () => {
  ensureBuilt();
  if (!fs.existsSync(SSHD)) throw new Error(`${SSHD} is missing: hack/install-deps.sh --test installs openssh-server`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0deploy-int-'));
  home = path.join(dir, 'home');
  app = path.join(dir, 'app');
  fs.mkdirSync(home);
  fs.mkdirSync(path.join(app, 'site', 'css'), { recursive: true });
  keygen(path.join(dir, 'host_key'));
  keygen(path.join(dir, 'id'));
  fs.copyFileSync(path.join(dir, 'id.pub'), path.join(dir, 'authorized_keys'));
  port = await freePort();
  fs.writeFileSync(path.join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${fs.readFileSync(path.join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
  fs.writeFileSync(path.join(dir, 'sshd_config'), [
    'ListenAddress 127.0.0.1', `Port ${port}`, `HostKey ${path.join(dir, 'host_key')}`, 'PidFile none',
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`, 'StrictModes no', 'UsePAM no',
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password',
    `AllowUsers ${os.userInfo().username}`, `SetEnv HOME=${home}`,
  ].join('\n'));
  // sshd's privilege separation wants this folder (the package's service would make it).
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  sshd = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  sshd.stderr!.setEncoding('utf8').on('data', (d: string) => { sshdLog += d; });
  const deadline = Date.now() + 10_000;
  while (!sshdLog.includes('Server listening')) {
    if (Date.now() > deadline || sshd.exitCode !== null) throw new Error(`sshd did not start: ${sshdLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  cli = new CliRunner(app, { PATH: process.env.PATH, HOME: dir });
});

afterAll(() => {
  cli?.killAll();
  sshd?.kill('SIGTERM');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const sshFlags = (): string[] => ['--host', '127.0.0.1', '--user', os.userInfo().username, '--port', String(port), '-i', path.join(dir, 'id'), '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`];
const deploy = (file: string, ...extra: string[]) => cli.run(['deploy', '-f', file, ...sshFlags(), ...extra, 'vm', 'test-vm'], { timeoutMs: 60_000 });
const lines = (file: string): string[] => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : []);

function writeApp(bootstrapScript: string): string {
  fs.writeFileSync(path.join(app, 'setup.sh'), bootstrapScript, { mode: 0o755 });
  fs.writeFileSync(path.join(app, 'site', 'index.html'), '<h1>n0deploy</h1>\n');
  fs.writeFileSync(path.join(app, 'site', 'css', 'a.css'), 'h1{}\n');
  const file = path.join(app, 'n0deploy');
  fs.writeFileSync(file, [
    '# the test app',
    'BOOTSTRAP',
    `COPY setup.sh ${dir}/setup.sh`,
    `RUN sh ${dir}/setup.sh \\`,
    `  >> "$HOME/bootstrap.log"`,
    'DEPLOY',
    `COPY site/ ${dir}/www`,
    `RUN cat ${dir}/www/index.html ${dir}/www/css/a.css \\`,
    `  && date +%s%N >> "$HOME/deploy.log"`,
  ].join('\n'));
  return file;
}

test('bootstrap once, deploy every time, a changed bootstrap again', async () => {
  const file = writeApp('echo bootstrap v1\n');
  const first = await deploy(file);
  expect(first.stderr).toBe('');
  expect(first.code).toBe(0);
  // The RUN's output, between n0ctl's step lines.
  expect(first.stdout).toContain('bootstrap: runs, it never ran on this VM\n[bootstrap 1/2] COPY setup.sh');
  expect(first.stdout).toContain(`[deploy 2/2] RUN cat ${dir}/www/index.html`);
  expect(first.stdout).toContain('<h1>n0deploy</h1>\nh1{}\n');
  expect(first.stdout).toMatch(/deployed to \S+@127\.0\.0\.1: 4 steps \(bootstrap ran\) in [\d.]+ s\n$/);
  expect(lines(path.join(home, 'bootstrap.log'))).toEqual(['bootstrap v1']);
  expect(lines(path.join(home, 'deploy.log'))).toHaveLength(1);
  expect(fs.readFileSync(path.join(dir, 'www', 'css', 'a.css'), 'utf8')).toBe('h1{}\n');
  const record = path.join(home, '.n0deploy', 'n0deploy.bootstrap');
  expect(fs.readFileSync(record, 'utf8')).toBe(`${loadDeployPlan(file).bootstrap!.hash}\n`);

  const second = await deploy(file);
  expect(second.code).toBe(0);
  expect(second.stdout).toContain('bootstrap: skipped, it ran before on this VM (~/.n0deploy/n0deploy.bootstrap holds sha256:');
  expect(second.stdout).not.toContain('[bootstrap');
  expect(second.stdout).toMatch(/2 steps \(bootstrap skipped\)/);
  expect(lines(path.join(home, 'bootstrap.log'))).toEqual(['bootstrap v1']);
  expect(lines(path.join(home, 'deploy.log'))).toHaveLength(2);

  // What bootstrap copies is part of it: an edited setup.sh is a changed bootstrap.
  writeApp('echo bootstrap v2\n');
  const third = await deploy(file);
  expect(third.code).toBe(0);
  expect(third.stdout).toContain('bootstrap: runs, the section changed since the recorded sha256:');
  expect(lines(path.join(home, 'bootstrap.log'))).toEqual(['bootstrap v1', 'bootstrap v2']);
  expect(fs.readFileSync(record, 'utf8')).toBe(`${loadDeployPlan(file).bootstrap!.hash}\n`);

  const forced = await deploy(file, '--force-bootstrap');
  expect(forced.stdout).toContain('bootstrap: runs, as --force-bootstrap asks');
  expect(lines(path.join(home, 'bootstrap.log'))).toEqual(['bootstrap v1', 'bootstrap v2', 'bootstrap v2']);

  // Another name keeps another record.
  const other = await deploy(file, '--name', 'other-app');
  expect(other.stdout).toContain('bootstrap: runs, it never ran on this VM');
  expect(fs.existsSync(path.join(home, '.n0deploy', 'other-app.bootstrap'))).toBe(true);
});

test('the first failing step ends the deploy with its exit code and names it; later steps do not run', async () => {
  const file = path.join(app, 'failing.n0deploy');
  fs.writeFileSync(file, `DEPLOY\nRUN echo before\nRUN echo oops >&2; exit 7\nRUN touch ${dir}/after\n`);
  const r = await deploy(file);
  expect(r.code).toBe(7);
  expect(r.stdout).toContain('[deploy 2/3] RUN echo oops >&2; exit 7 (line 3)');
  expect(r.stdout).not.toContain('[deploy 3/3]');
  expect(r.stderr).toBe(`oops\nn0ctl: deploy to ${os.userInfo().username}@127.0.0.1 stopped: [deploy 2/3] RUN echo oops >&2; exit 7 (line 3) failed with exit code 7\n`);
  expect(fs.existsSync(path.join(dir, 'after'))).toBe(false);

  // A failing bootstrap records nothing and deploys nothing.
  const boot = path.join(app, 'boot-fails.n0deploy');
  fs.writeFileSync(boot, `BOOTSTRAP\nRUN exit 3\nDEPLOY\nRUN touch ${dir}/after\n`);
  const b = await deploy(boot);
  expect(b.code).toBe(3);
  expect(b.stderr).toContain('[bootstrap 1/1] RUN exit 3 (line 2) failed with exit code 3');
  expect(fs.existsSync(path.join(home, '.n0deploy', 'boot-fails.n0deploy.bootstrap'))).toBe(false);
  expect(fs.existsSync(path.join(dir, 'after'))).toBe(false);

  // A COPY into a path it cannot make fails as a step too.
  fs.writeFileSync(path.join(dir, 'plainfile'), '');
  const c = path.join(app, 'copy-fails.n0deploy');
  fs.writeFileSync(c, `DEPLOY\nCOPY site ${dir}/plainfile/www\n`);
  const cr = await deploy(c);
  expect(cr.code).toBe(1);
  expect(cr.stderr).toMatch(/mkdir: .*plainfile.*Not a directory/);
  expect(cr.stderr).toContain(`[deploy 1/1] COPY site ${dir}/plainfile/www (line 2) failed with exit code 1`);
});

test('RUN output reaches the user while the step still runs', async () => {
  const file = path.join(app, 'slow.n0deploy');
  fs.writeFileSync(file, 'DEPLOY\nRUN echo first; sleep 2; echo second\n');
  const child = cli.spawn(['deploy', '-f', file, ...sshFlags(), 'vm', 'test-vm']);
  const started = Date.now();
  let firstAt = 0;
  let stdout = '';
  child.stdout!.on('data', (d) => { stdout += d; if (!firstAt && stdout.includes('first\n')) firstAt = Date.now(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code).toBe(0);
  expect(stdout).toContain('first\nsecond\n');
  expect(Date.now() - firstAt).toBeGreaterThan(1500);
  expect(firstAt - started).toBeGreaterThan(0);
});

test('nothing connects for a file with problems; an unknown host key is refused with a hint', async () => {
  const bad = path.join(app, 'bad.n0deploy');
  fs.writeFileSync(bad, 'DEPLOY\nCOPY ../../etc/passwd /tmp/\nRUN\n');
  const logBefore = sshdLog.length;
  const r = await deploy(bad);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(`n0ctl: ${bad}: 2 problems; nothing was run:\n  line 2: COPY source ../../etc/passwd leaves the file's folder with ".."\n  line 3: RUN needs a command\n`);
  expect(sshdLog.slice(logBefore)).not.toMatch(/Accepted|Connection/);

  const ok = path.join(app, 'ok.n0deploy');
  fs.writeFileSync(ok, `DEPLOY\nRUN touch ${dir}/unverified\n`);
  const unknown = await cli.run(['deploy', '-f', ok, ...sshFlags().slice(0, -2), '-o', `UserKnownHostsFile=${path.join(dir, 'empty_known_hosts')}`, 'vm', 'test-vm'], { timeoutMs: 30_000 });
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toMatch(/ssh to \S+@127\.0\.0\.1 failed \(exit 255\): .*Host key verification failed.*StrictHostKeyChecking=accept-new/s);
  expect(fs.existsSync(path.join(dir, 'unverified'))).toBe(false);
});

test('--dry-run prints the steps and the bootstrap hash without connecting', async () => {
  const file = writeApp('echo bootstrap v1\n');
  const r = await cli.run(['deploy', '-f', file, '--dry-run', 'vm', 'test-vm']);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe([
    `BOOTSTRAP (${loadDeployPlan(file).bootstrap!.hash})`,
    `  1. COPY setup.sh ${dir}/setup.sh (line 3) [file]`,
    `  2. RUN sh ${dir}/setup.sh >> "$HOME/bootstrap.log" (line 4)`,
    'DEPLOY',
    `  1. COPY site ${dir}/www (line 7) [folder]`,
    `  2. RUN cat ${dir}/www/index.html ${dir}/www/css/a.css && date +%s%N >> "$HOME/deploy.log" (line 8)`,
    '',
  ].join('\n'));
});
