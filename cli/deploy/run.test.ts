// The remote scripts, run by a local /bin/sh exactly as the VM's login shell gets them from ssh
// (one command line), in a folder standing in for the login user's home.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { COPY_FILE, COPY_FOLDER, READ_RECORD, WRITE_RECORD, remoteCommand } from './run';

let home: string;
beforeEach(() => { home = fs.mkdtempSync(path.join(os.tmpdir(), 'n0deploy-home-')); });
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

function loginShell(commandLine: string, input?: Buffer | string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('/bin/sh', ['-c', commandLine], { cwd: home, env: { PATH: process.env.PATH, HOME: home }, input, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('remoteCommand hands arguments to the script as $1.. whatever they hold', () => {
  const odd = ['a b', "it's", '$(touch pwned)', '; id', '-n'];
  const r = loginShell(remoteCommand('for a in "$@"; do printf "<%s>" "$a"; done', odd));
  expect(r.stdout).toBe(odd.map((a) => `<${a}>`).join(''));
  expect(fs.existsSync(path.join(home, 'pwned'))).toBe(false);
  expect(loginShell(remoteCommand('exit 7')).code).toBe(7);
});

test('the record: absent reads as empty, written atomically, read back', () => {
  expect(loginShell(remoteCommand(READ_RECORD, ['app']))).toEqual({ code: 0, stdout: '', stderr: '' });
  expect(loginShell(remoteCommand(WRITE_RECORD, ['app', 'sha256:abc'])).code).toBe(0);
  expect(fs.readFileSync(path.join(home, '.n0deploy', 'app.bootstrap'), 'utf8')).toBe('sha256:abc\n');
  expect(fs.readdirSync(path.join(home, '.n0deploy'))).toEqual(['app.bootstrap']);
  expect(loginShell(remoteCommand(READ_RECORD, ['app'])).stdout).toBe('sha256:abc\n');
  expect(loginShell(remoteCommand(READ_RECORD, ['other'])).stdout).toBe('');
});

describe('COPY of a file', () => {
  const copyFile = (dst: string, mode = '644') => loginShell(remoteCommand(COPY_FILE, [dst, 'tool.sh', mode]), 'echo tool\n');

  test('to a path: that path, parents made, mode kept', () => {
    expect(copyFile('bin/deep/run.sh', '755').code).toBe(0);
    const file = path.join(home, 'bin', 'deep', 'run.sh');
    expect(fs.readFileSync(file, 'utf8')).toBe('echo tool\n');
    expect(fs.statSync(file).mode & 0o777).toBe(0o755);
  });

  test('to a path ending in / or to an existing folder: into it under its own name', () => {
    expect(copyFile('into/').code).toBe(0);
    expect(fs.readFileSync(path.join(home, 'into', 'tool.sh'), 'utf8')).toBe('echo tool\n');
    fs.mkdirSync(path.join(home, 'existing'));
    expect(copyFile(path.join(home, 'existing')).code).toBe(0);
    expect(fs.readFileSync(path.join(home, 'existing', 'tool.sh'), 'utf8')).toBe('echo tool\n');
  });

  test('a destination it cannot write fails with a non-zero code', () => {
    fs.writeFileSync(path.join(home, 'afile'), '');
    const r = copyFile('afile/sub/x');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/afile/);
  });
});

test('COPY of a folder: its contents into the destination, whose own mode stays', () => {
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'n0deploy-src-'));
  try {
    fs.mkdirSync(path.join(src, 'sub'));
    fs.writeFileSync(path.join(src, 'sub', 'a.txt'), 'A');
    fs.symlinkSync('sub/a.txt', path.join(src, 'link'));
    fs.chmodSync(src, 0o700);
    const dst = path.join(home, 'opt');
    fs.mkdirSync(dst, { mode: 0o755 });
    fs.chmodSync(dst, 0o755);
    const tar = spawnSync('tar', ['-c', '-f', '-', '-C', src, '.']);
    expect(tar.status).toBe(0);
    const r = loginShell(remoteCommand(COPY_FOLDER, ['opt']), tar.stdout);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(fs.readFileSync(path.join(dst, 'sub', 'a.txt'), 'utf8')).toBe('A');
    expect(fs.readlinkSync(path.join(dst, 'link'))).toBe('sub/a.txt');
    expect(fs.statSync(dst).mode & 0o777).toBe(0o755);
    // A destination that does not exist yet is made.
    expect(loginShell(remoteCommand(COPY_FOLDER, ['new/dir']), tar.stdout).code).toBe(0);
    expect(fs.readFileSync(path.join(home, 'new', 'dir', 'sub', 'a.txt'), 'utf8')).toBe('A');
  } finally { fs.rmSync(src, { recursive: true, force: true }); }
});
