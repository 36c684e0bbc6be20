// The built n0ctl (dist/cli/n0ctl.js) against a real facade on the embedded store, with a token.
// Only Node and Image RPCs are used for effects: they answer without controllers, which this test
// does not start. Everything else the CLI does (validation, ordering, printing, exit codes) is real.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore, type Store } from '../api/store';
import { startFacade, type Facade } from '../api/server/server';
import { TokenFile } from '../api/server/auth';
import { ensureCertBundle, readTlsMaterial } from '../api/pki';
import { writeClientConfig } from './config';
import { CLI, ROOT, ensureBuilt } from './testing/n0ctl';

const TOKEN = 'integration-token-0123456789';

// Each CLI run is a fresh node process (~0.7 s CPU); on a loaded 2-core machine that is seconds.
jest.setTimeout(120_000);

interface Result { code: number | null; stdout: string; stderr: string }

describe('n0ctl against a running facade', () => {
  let dir: string;
  let store: Store;
  let facade: Facade;
  let caFile: string;
  let viewerToken: string;
  let env: NodeJS.ProcessEnv;
  const children = new Set<ChildProcess>();

  const n0ctl = (args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: { ...env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`n0ctl ${args.join(' ')} timed out\n${stdout}\n${stderr}`)); }, 30_000);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); children.delete(child); resolve({ code, stdout, stderr }); });
    child.stdin!.end(options.stdin ?? '');
  });
  const write = (name: string, text: string): string => { const p = path.join(dir, name); fs.writeFileSync(p, text); return p; };

  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0ctl-int-'));
    store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
    // TLS and a CA in the config, as `n0stack up` sets them up.
    const pkiDir = path.join(dir, 'pki');
    ensureCertBundle(pkiDir, { servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }] });
    const tls = readTlsMaterial(pkiDir, 'facade');
    caFile = path.join(pkiDir, 'ca.crt');
    viewerToken = TokenFile.create(path.join(dir, 'tokens.json'), 'viewer').token;
    facade = await startFacade({
      store, listen: '127.0.0.1:0', token: TOKEN, tokens: new TokenFile(path.join(dir, 'tokens.json')),
      tls: { cert: tls.cert, key: tls.key }, defaultWaitMs: 5000,
    });
    const config = path.join(dir, 'config');
    writeClientConfig(config, { endpoint: `127.0.0.1:${facade.port}`, token: TOKEN, ca: caFile });
    // Nothing from the developer's environment may leak into the CLI under test.
    env = { PATH: process.env.PATH, HOME: dir, N0STACK_CONFIG: config, N0STACK_LOG_LEVEL: 'error' };
  }, 300_000);

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await facade?.stop();
    await store?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('do: runs the DAG, reports ok/failed/skipped/ignored per task, exits 1, and the effects are real', async () => {
    const file = write('pool.yaml', `
ApplyNode:
  type: Node
  action: ApplyNode
  args:
    name: vm-host1
    annotations:
      github.com/n0stack/n0stack/n0core/agent_version: "52"
    address: 192.168.122.10
    serial: Specified
    cpu_milli_cores: 1000
    memory_bytes: 1033236480
    storage_bytes: 107374182400
    unit: 1
ApplyImage:
  type: Image
  action: ApplyImage
  args:
    name: cloudimage-ubuntu
RegisterBlockStorage:
  type: Image
  action: RegisterBlockStorage
  args:
    image_name: cloudimage-ubuntu
    block_storage_name: cloudimage-ubuntu-1804
    tags: [latest, "18.04"]
  depends_on: [ApplyImage]
TagImage:
  type: Image
  action: TagImage
  args: {name: cloudimage-ubuntu, block_storage_name: cloudimage-ubuntu-1804, tags: [stable]}
  depends_on: [RegisterBlockStorage]
Probe:
  type: Network
  action: GetNetwork
  args: {name: nope}
  ignore_error: true
`);
    const r = await n0ctl(['do', file]);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^\[ok\] ApplyNode \d+\.\ds$/), expect.stringMatching(/^\[ok\] ApplyImage \d+\.\ds$/)]));
    expect(r.stdout).toMatch(/^\[failed\] RegisterBlockStorage: NOT_FOUND: .*cloudimage-ubuntu-1804/m);
    expect(r.stdout).toContain('[skipped] TagImage: dependency "RegisterBlockStorage" failed');
    expect(r.stdout).toMatch(/^\[ignored\] Probe: NOT_FOUND: .*nope.* \(ignore_error\)$/m);
    expect(r.stderr).toMatch(/2 done, 1 failed, 1 ignored, 1 skipped in/);

    // The seed's `n0cli get node` facts, in the seed's JSON shape.
    const seed = await n0ctl(['get', 'node', '-o', 'seed']);
    expect(seed.code).toBe(0);
    expect(JSON.parse(seed.stdout)).toEqual({
      nodes: [expect.objectContaining({
        name: 'vm-host1',
        annotations: { 'github.com/n0stack/n0stack/n0core/agent_version': '52' },
        address: '192.168.122.10', serial: 'Specified', cpu_milli_cores: 1000,
        memory_bytes: '1033236480', storage_bytes: '107374182400', unit: 1,
      })],
    });
    const one = await n0ctl(['get', 'nodes', 'vm-host1', '-o', 'seed']);
    expect(JSON.parse(one.stdout)).toMatchObject({ name: 'vm-host1', memory_bytes: '1033236480' });

    const table = await n0ctl(['get', 'node']);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+ADDRESS\s+STATE\s+CPU\s+MEMORY\s+AGE$/);
    expect(table.stdout.split('\n')[1]).toMatch(/^vm-host1\s+192\.168\.122\.10\s+\S+\s+1000\s+985MiB\s+\d+s$/);

    const images = await n0ctl(['get', 'img', '-o', 'name']);
    expect(images.stdout.trim()).toBe('image/cloudimage-ubuntu');
  });

  it('do --reverse deletes what a DAG created; --dry-run calls nothing', async () => {
    const file = write('make.yaml', `
ApplyImage: {type: Image, action: ApplyImage, args: {name: rev-img}}
ApplyNode: {type: Node, action: ApplyNode, args: {name: rev-node, address: 10.0.0.9}, depends_on: [ApplyImage]}
`);
    expect((await n0ctl(['do', '--dry-run', file])).stdout).toBe('level 1:\n  ApplyImage: Image.ApplyImage "rev-img"\nlevel 2:\n  ApplyNode: Node.ApplyNode "rev-node" after ApplyImage\n');
    expect((await n0ctl(['get', 'img', 'rev-img'])).code).toBe(1);
    expect((await n0ctl(['do', file])).code).toBe(0);
    expect((await n0ctl(['get', 'img', 'rev-img', '-o', 'name'])).stdout).toBe('image/rev-img\n');
    const reverse = await n0ctl(['do', '--reverse', file]);
    expect(reverse.code).toBe(0);
    // DeleteNode first (it was created last), then DeleteImage.
    expect(reverse.stdout.split('\n').filter((l) => l.startsWith('[ok]')).map((l) => l.split(' ')[1])).toEqual(['Delete_rev-node', 'Delete_rev-img']);
    const gone = await n0ctl(['get', 'img', 'rev-img']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^n0ctl: NOT_FOUND: Image "rev-img" not found/);
  });

  it('do refuses the seed\'s broken ISO file before calling anything (exit 2)', async () => {
    const r = await n0ctl(['do', path.join(ROOT, 'e2e', 'seed', 'boot-vm-from-iso.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('task "CreateVirtualMachine": depends_on names "CreateBlockStorage", which is not a task in this file');
    expect((await n0ctl(['get', 'net', 'test-network'])).stderr).toContain('NOT_FOUND');
  });

  it('apply creates in dependency order, then reports unchanged; diff shows a change; delete -f removes', async () => {
    const manifests = write('stack.yaml', `
apiVersion: n0stack.io/v1alpha1
kind: Image
metadata: {name: app-image, labels: {env: lab}}
spec: {}
---
apiVersion: n0stack.io/v1alpha1
kind: Node
metadata: {name: app-node, labels: {env: lab}}
spec: {address: 10.1.0.1, cpu_milli_cores: 4000}
`);
    const created = await n0ctl(['apply', '-f', manifests, '--no-wait']);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toBe('node/app-node created\nimage/app-image created\n');
    expect((await n0ctl(['apply', '-f', manifests, '--no-wait'])).stdout).toBe('node/app-node unchanged\nimage/app-image unchanged\n');

    const changed = manifests.replace('stack', 'stack2');
    fs.writeFileSync(changed, fs.readFileSync(manifests, 'utf8').replace('cpu_milli_cores: 4000', 'cpu_milli_cores: 8000'));
    const diff = await n0ctl(['diff', '-f', changed]);
    expect(diff.code).toBe(1);
    expect(diff.stdout).toContain('node/app-node:\n  ~ spec.cpu_milli_cores: 8000');
    expect(diff.stdout).toContain('image/app-image: no changes');
    expect((await n0ctl(['get', 'node', 'app-node', '-o', 'json'])).stdout).toContain('"cpu_milli_cores": 4000');

    const fromStdin = await n0ctl(['apply', '-f', '-', '--no-wait'], { stdin: fs.readFileSync(changed, 'utf8') });
    expect(fromStdin.stdout).toBe('node/app-node configured\nimage/app-image unchanged\n');
    const selected = await n0ctl(['get', 'node', '-l', 'env=lab', '-o', 'yaml']);
    expect(selected.stdout).toContain('cpu_milli_cores: 8000');
    expect(selected.stdout).not.toContain('vm-host1');

    const described = await n0ctl(['describe', 'node', 'app-node']);
    expect(described.stdout).toMatch(/^Name:\s+app-node$/m);
    expect(described.stdout).toMatch(/^Labels:\s+env=lab$/m);

    const deleted = await n0ctl(['delete', '-f', manifests, '--no-wait']);
    expect(deleted.stdout).toBe('image/app-image deleted\nnode/app-node deleted\n');
    expect((await n0ctl(['get', 'image', 'app-image'])).code).toBe(1);
    // No controllers run here: the Node waits on its protection finalizer, which the Node
    // controller drops once nothing is placed on it.
    const pending = JSON.parse((await n0ctl(['get', 'node', 'app-node', '-o', 'json'])).stdout);
    expect(pending.metadata.deletionTimestamp).toBeDefined();
    expect(pending.metadata.finalizers).toContain('n0stack.io/node');
  });

  it('apply rejects an invalid manifest locally (exit 2), naming file and field', async () => {
    const bad = write('bad.yaml', 'apiVersion: n0stack.io/v1alpha1\nkind: Node\nmetadata: {name: Bad_Name}\nspec: {cpu_milli_cores: many}\n');
    const r = await n0ctl(['apply', '-f', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}: metadata.name "Bad_Name" is invalid`);
  });

  it('get -w prints the list, then changes, and stops cleanly on Ctrl-C', async () => {
    const child = spawn(process.execPath, [CLI, 'get', 'img', '-w'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    const until = async (pred: () => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 15_000;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output so far:\n${stdout}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => { children.delete(child); resolve(code); }));
    await until(() => stdout.includes('cloudimage-ubuntu'), 'the initial list');
    const created = await n0ctl(['do', write('watch.yaml', 'A: {type: Image, action: ApplyImage, args: {name: watched-img}}\n')]);
    expect(created.code).toBe(0);
    await until(() => /^watched-img\s.*ADDED$/m.test(stdout), 'the ADDED event');
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });

  it('a wrong token is refused with UNAUTHENTICATED; an unreachable endpoint says where it tried', async () => {
    const denied = await n0ctl(['get', 'node'], { env: { N0STACK_TOKEN: 'wrong' } });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^n0ctl: UNAUTHENTICATED: /);
    const down = await n0ctl(['--api-endpoint', '127.0.0.1:1', '--timeout', '5s', 'get', 'node']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^n0ctl: (UNAVAILABLE: cannot reach the n0stack API at 127\.0\.0\.1:1|DEADLINE_EXCEEDED)/);
  });

  it('a viewer token read from --token-file reads, and a write is PERMISSION_DENIED naming the RPC', async () => {
    const file = write('viewer.token', `${viewerToken}\n`);
    const read = await n0ctl(['--token-file', file, 'get', 'node']);
    expect(read.code).toBe(0);
    const denied = await n0ctl(['--token-file', file, 'do', write('viewer-write.yaml', 'A: {type: Image, action: ApplyImage, args: {name: viewer-img}}\n')]);
    expect(denied.code).toBe(1);
    expect(`${denied.stdout}${denied.stderr}`).toMatch(/PERMISSION_DENIED: ImageService\.ApplyImage changes state and a viewer token may only read/);
    await expect(store.get('Image', 'viewer-img')).rejects.toThrow(/not found/);
    const gone = await n0ctl(['--token-file', path.join(dir, 'no-such.token'), 'get', 'node']);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain('no-such.token');
  });

  it('verifies the facade: without its CA the handshake fails and says to set --ca; plaintext to it fails', async () => {
    const unverified = await n0ctl(['--context', 'default', '--timeout', '5s', 'get', 'node'], { env: { N0STACK_CONFIG: write('no-ca.config', `current-context: default\ncontexts: [{name: default, endpoint: "127.0.0.1:${facade.port}", token: ${TOKEN}}]\n`) } });
    expect(unverified.code).toBe(1);
    expect(unverified.stderr).toMatch(/^n0ctl: (UNAVAILABLE|DEADLINE_EXCEEDED).*--ca/s);
    const plaintext = await n0ctl(['--api-endpoint', `http://127.0.0.1:${facade.port}`, '--timeout', '5s', 'get', 'node']);
    expect(plaintext.code).toBe(1);
    expect(plaintext.stderr).toMatch(/^n0ctl: (UNAVAILABLE|DEADLINE_EXCEEDED|INTERNAL)/);
    expect(plaintext.stdout).toBe('');
  });

  it('config view redacts the token', async () => {
    const r = await n0ctl(['config', 'view']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(TOKEN);
    expect(r.stdout).toContain('token: REDACTED');
    expect(r.stdout).toContain(`endpoint 127.0.0.1:${facade.port} (from context "default"), token set (from context "default")`);
  });
});
