// The image the chart runs (issue [L] item 6): hack/build-image.sh builds it with buildah from
// scratch and a root filesystem made from this machine's packages (no registry pull). Then
// `podman run` of it: its entrypoint answers `controllers --help`, and `n0stack controllers` in it
// runs against a local etcd with a certificate bundle from `n0stack pki issue-controllers`.
// Podman here needs runc (crun refuses this host's hybrid cgroup v1 setup) and explicit
// --ulimit values (the default raises RLIMIT_NOFILE/NPROC past the hard limits, which this
// sandbox may not do: "setrlimit RLIMIT_NOFILE: Operation not permitted").
// Without buildah/podman (./hack/install-deps.sh --test installs them; a machine without root may lack them) the root
// filesystem alone is tested, with its entrypoint in `unshare --fork --pid --mount-proc chroot`,
// and the test says so.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureBuilt, ROOT } from './testing/n0ctl';

jest.setTimeout(600_000);

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const TAG = 'localhost/n0stack:int-test';
const PODMAN = ['--runtime', 'runc'];
const ULIMITS = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];
const usePodman = process.getuid?.() === 0 && has('buildah') && has('podman') && has('runc');
let dir: string;

function run(cmd: string, args: string[], until?: RegExp, timeoutMs = 300_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')} neither exited nor matched ${until}: ${output}`)); }, timeoutMs);
    const onData = (d: Buffer) => { output += d; if (until?.test(output)) child.kill('SIGTERM'); };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, output }); });
  });
}

beforeAll(() => {
  ensureBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-image-'));
});
afterAll(() => {
  if (usePodman) spawnSync('buildah', ['rmi', '-f', TAG]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('hack/build-image.sh builds an image whose entrypoint serves n0stack controllers --help', async () => {
  if (!usePodman) {
    console.log('buildah/podman/runc not installed (or not root): testing the root filesystem with unshare --fork --pid --mount-proc chroot instead of podman run');
    const rootfs = path.join(dir, 'rootfs');
    const built = await run(path.join(ROOT, 'hack', 'build-image.sh'), ['--rootfs', rootfs]);
    expect(built.code).toBe(0);
    const r = await run('unshare', ['--fork', '--pid', '--mount-proc', 'chroot', rootfs, '/usr/bin/node', '/app/dist/cli/n0stack.js', 'controllers', '--help']);
    expect(r.output).toContain('Usage: n0stack controllers');
    return;
  }
  const built = await run(path.join(ROOT, 'hack', 'build-image.sh'), [TAG]);
  expect(built.output).toContain(`built ${TAG}`);
  expect(built.code).toBe(0);
  const inspect = JSON.parse(spawnSync('buildah', ['inspect', '--type', 'image', TAG], { encoding: 'utf8' }).stdout);
  expect(inspect.OCIv1.config.Entrypoint).toEqual(['/usr/bin/node', '/app/dist/cli/n0stack.js']);
  expect(inspect.OCIv1.config.User).toBe('65532:65532');
  const help = await run('podman', [...PODMAN, 'run', '--rm', ...ULIMITS, TAG, 'controllers', '--help']);
  console.log(`podman run ${TAG} controllers --help: exit ${help.code}`);
  expect(help.output).toContain('Usage: n0stack controllers');
  expect(help.code).toBe(0);
});

test('n0stack controllers in the image runs against a local etcd with the bundle of n0stack pki issue-controllers', async () => {
  const etcd = process.env.N0STACK_TEST_ETCD;
  if (!usePodman || !etcd) {
    console.log(`skipped: ${!etcd ? 'N0STACK_TEST_ETCD is not set' : 'no podman'}`);
    return;
  }
  const bundle = path.join(dir, 'controllers-pki');
  const issued = await run(process.execPath, [path.join(ROOT, 'dist', 'cli', 'n0stack.js'), 'pki', 'issue-controllers', '--data-dir', path.join(dir, 'ca'), '--out', bundle]);
  expect(issued.code).toBe(0);
  // As a Secret volume would give it to the image's unprivileged user.
  for (const f of fs.readdirSync(bundle)) fs.chownSync(path.join(bundle, f), 65532, 65532);
  fs.chownSync(bundle, 65532, 65532);
  const r = await run('podman', [...PODMAN, 'run', '--rm', ...ULIMITS, '--network', 'host', '-v', `${bundle}:/pki:ro`, TAG,
    'controllers', '--store', 'etcd', '--etcd-endpoints', etcd, '--etcd-prefix', `/n0stack-image-${process.pid}`, '--pki-dir', '/pki', '--data-dir', '/tmp/n0stack', '--leader-elect'], /controllers running/, 120_000);
  console.log(`podman run ${TAG} controllers --store etcd: ${r.output.split('\n').filter((l) => /controllers running|elected|caches synced/.test(l)).join(' | ')}`);
  expect(r.output).toMatch(/controllers running \(store: etcd, leader election as /);
});
