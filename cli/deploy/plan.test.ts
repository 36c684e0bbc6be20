import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { N0deployError } from './parse';
import { loadDeployPlan } from './plan';

let dir: string;
let outside: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0deploy-plan-'));
  outside = fs.mkdtempSync(path.join(os.tmpdir(), 'n0deploy-outside-'));
  fs.mkdirSync(path.join(dir, 'site', 'css'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'site', 'index.html'), '<h1>hi</h1>');
  fs.writeFileSync(path.join(dir, 'setup.sh'), 'echo setup\n', { mode: 0o755 });
  fs.writeFileSync(path.join(outside, 'secret'), 'secret');
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

function write(text: string): string {
  const file = path.join(dir, 'n0deploy');
  fs.writeFileSync(file, text);
  return file;
}

function problemsOf(file: string): string[] {
  try { loadDeployPlan(file); } catch (e) { if (e instanceof N0deployError) return e.problems; throw e; }
  throw new Error('planned without problems');
}

const BOOT = 'BOOTSTRAP\nCOPY setup.sh /tmp/setup.sh\nRUN sh /tmp/setup.sh\nDEPLOY\nCOPY site/ /srv/site\n';

test('COPY sources are resolved in the file\'s folder as files or folders with their modes', () => {
  const plan = loadDeployPlan(write(BOOT));
  expect(plan.bootstrap!.steps[0]).toMatchObject({ instruction: 'COPY', source: 'setup.sh', absolute: fs.realpathSync(path.join(dir, 'setup.sh')), kind: 'file', mode: 0o755 });
  expect(plan.deploy.steps[0]).toMatchObject({ source: 'site', kind: 'folder' });
  expect(plan.bootstrap!.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
});

test('the bootstrap hash changes with its steps and with the bytes it copies, and only then', () => {
  const file = write(BOOT);
  const first = loadDeployPlan(file).bootstrap!.hash;
  expect(loadDeployPlan(file).bootstrap!.hash).toBe(first);
  // The deploy section and what it copies are not part of it.
  fs.writeFileSync(path.join(dir, 'site', 'index.html'), '<h1>changed</h1>');
  write(`${BOOT}RUN echo more deploy\n`);
  expect(loadDeployPlan(file).bootstrap!.hash).toBe(first);
  fs.writeFileSync(path.join(dir, 'setup.sh'), 'echo setup v2\n');
  const second = loadDeployPlan(file).bootstrap!.hash;
  expect(second).not.toBe(first);
  fs.chmodSync(path.join(dir, 'setup.sh'), 0o644);
  expect(loadDeployPlan(file).bootstrap!.hash).not.toBe(second);
  write(BOOT.replace('RUN sh', 'RUN  sh'));
  expect(loadDeployPlan(file).bootstrap!.hash).not.toBe(second);
});

test('a folder\'s hash covers names, nested files and symlink targets', () => {
  const file = write('BOOTSTRAP\nCOPY site /srv/site\nDEPLOY\nRUN true\n');
  const hashes = new Set([loadDeployPlan(file).bootstrap!.hash]);
  fs.writeFileSync(path.join(dir, 'site', 'css', 'a.css'), 'a{}');
  hashes.add(loadDeployPlan(file).bootstrap!.hash);
  fs.renameSync(path.join(dir, 'site', 'css', 'a.css'), path.join(dir, 'site', 'css', 'b.css'));
  hashes.add(loadDeployPlan(file).bootstrap!.hash);
  fs.symlinkSync('index.html', path.join(dir, 'site', 'link'));
  hashes.add(loadDeployPlan(file).bootstrap!.hash);
  fs.unlinkSync(path.join(dir, 'site', 'link'));
  fs.symlinkSync('css', path.join(dir, 'site', 'link'));
  hashes.add(loadDeployPlan(file).bootstrap!.hash);
  expect(hashes.size).toBe(5);
});

test('missing sources and symlinks out of the folder are refused before anything connects', () => {
  fs.symlinkSync(path.join(outside, 'secret'), path.join(dir, 'leak'));
  fs.symlinkSync(outside, path.join(dir, 'leakdir'));
  fs.symlinkSync(path.join(dir, 'site'), path.join(dir, 'alias'));
  const file = write('DEPLOY\nCOPY nothing /tmp/\nCOPY leak /tmp/\nCOPY leakdir/secret /tmp/\nCOPY alias /tmp/alias\n');
  expect(problemsOf(file)).toEqual([
    `line 2: COPY source nothing does not exist in ${dir}`,
    `line 3: COPY source leak leads outside the file's folder through a symlink (to ${fs.realpathSync(path.join(outside, 'secret'))})`,
    `line 4: COPY source leakdir/secret leads outside the file's folder through a symlink (to ${fs.realpathSync(path.join(outside, 'secret'))})`,
  ]);
});

test('a file that cannot be read is one problem naming it', () => {
  expect(problemsOf(path.join(dir, 'absent'))).toEqual([expect.stringContaining('ENOENT')]);
});
