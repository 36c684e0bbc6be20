// `n0stack pki` as a user runs it (issue [L] item 4): every identity a multi-machine shape needs
// has a command (issue-facade, issue-agent, issue-controllers), and `n0stack controllers` without
// its certificate names the command that makes it; with the bundle issue-controllers wrote it starts.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { n0stackCommand } from '../e2e/procs';
import { certDetails, verifyCert } from '../api/pki';
import { ROOT } from './testing/n0ctl';

jest.setTimeout(120_000);

let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-pki-cmd-')); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs `n0stack ...` until it exits or prints `until` (then stops it). */
function n0stack(args: string[], until?: RegExp): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...n0stackCommand(), ...args], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: dir, N0STACK_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`n0stack ${args.join(' ')} neither exited nor matched ${until}: ${output}`)); }, 90_000);
    const onData = (d: Buffer): void => { output += d; if (until?.test(output)) child.kill('SIGTERM'); };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, output }); });
  });
}

test('n0stack pki has issue-facade, issue-agent and issue-controllers', async () => {
  const help = await n0stack(['pki', '--help']);
  expect(help.code).toBe(0);
  for (const c of ['issue-facade', 'issue-agent', 'issue-controllers']) expect(help.output).toContain(c);
});

test('n0stack controllers without controllers.crt names the command that makes it; issue-controllers --out makes a bundle it starts with', async () => {
  const data = path.join(dir, 'ctl-data');
  const missing = await n0stack(['controllers', '--store', 'embedded', '--data-dir', data, '--pki-dir', path.join(dir, 'empty-pki')]);
  expect(missing.code).toBe(1);
  expect(missing.output).toMatch(/controllers\.crt|ca\.crt/);
  expect(missing.output).toContain('does not exist: run `n0stack pki issue-controllers --data-dir <data-dir> [--out <dir>]`');
  expect(missing.output).not.toContain('ensureCertBundle');

  const caDir = path.join(dir, 'ca-machine');
  const out = path.join(dir, 'controllers-pki');
  const issued = await n0stack(['pki', 'issue-controllers', '--data-dir', caDir, '--out', out]);
  expect(issued.code).toBe(0);
  expect(fs.readdirSync(out).sort()).toEqual(['ca.crt', 'controllers.crt', 'controllers.key']);
  expect((fs.statSync(path.join(out, 'controllers.key')).mode & 0o077)).toBe(0);
  const cert = fs.readFileSync(path.join(out, 'controllers.crt'), 'utf8');
  expect(verifyCert(fs.readFileSync(path.join(caDir, 'pki', 'ca.crt'), 'utf8'), cert)).toBe(true);
  expect(certDetails(cert)).toMatchObject({ commonName: 'controllers', clientAuth: true });
  // Issued again while still good: the same certificate (a second run never invalidates copies).
  await n0stack(['pki', 'issue-controllers', '--data-dir', caDir]);
  expect(fs.readFileSync(path.join(caDir, 'pki', 'controllers.crt'), 'utf8')).toBe(cert);

  const started = await n0stack(['controllers', '--store', 'embedded', '--data-dir', data, '--pki-dir', out], /controllers running/);
  expect(started.output).toContain('controllers running (store: embedded');
});
