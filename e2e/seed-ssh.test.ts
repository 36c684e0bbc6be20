// Issue [E]'s first scenario: the seed's "Register blockstorage as an Image" and "Boot
// VirtualMachine from Image" files, unchanged but for a loopback source_url serving the Debian
// guest built here, run with the built n0ctl against a whole n0stack; cloud-init applies the
// seed's login_username and key, and the test logs in over SSH with the private key printed in the
// seed document, at the VM's static address, from inside the host's namespace.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CliRunner, ensureBuilt } from '../cli/testing/n0ctl';
import { TestCloud, type TestHost } from './cloud';
import { ensureGuestImage, GUEST_IMAGE_BUILD_TIMEOUT_MS } from './guest-image';
import { serveImages, timing, type ImageServer } from './images';
import { runDeployCases } from './deploy-cases';

jest.setTimeout(GUEST_IMAGE_BUILD_TIMEOUT_MS + 15 * 60_000);

const SEED = path.join(__dirname, 'seed');
const SEED_URL = 'https://cloud-images.ubuntu.com/bionic/current/bionic-server-cloudimg-amd64.img';
const VM_IP = '192.168.0.1';

let cloud: TestCloud;
let images: ImageServer;
let dir: string;
let cli: CliRunner;

beforeAll(async () => {
  ensureBuilt();
  const image = await ensureGuestImage();
  images = await serveImages([image]);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-seed-ssh-'));
  // The seed's files, byte for byte, except the internet source_url.
  for (const file of ['register-image.yaml', 'boot-vm-from-image.yaml', 'boot-vm-from-image-inverse.yaml']) {
    const text = fs.readFileSync(path.join(SEED, file), 'utf8');
    const replaced = text.split(SEED_URL).join(images.url(path.basename(image)));
    if (file === 'register-image.yaml') expect(replaced).not.toBe(text);
    fs.writeFileSync(path.join(dir, file), replaced);
  }
  const key = path.join(dir, 'n0user_ecdsa');
  fs.writeFileSync(key, fs.readFileSync(path.join(SEED, 'n0user_ecdsa'), 'utf8').split('\n').filter((l) => !l.startsWith('#')).join('\n'), { mode: 0o600 });
  cloud = await TestCloud.start({ store: 'embedded', nodes: ['vm-host1'] });
  cli = new CliRunner(dir, { PATH: process.env.PATH, HOME: dir, N0STACK_API_ENDPOINT: cloud.endpoint, N0STACK_TOKEN: cloud.token, N0STACK_CA: cloud.caFile });
});

afterAll(async () => {
  cli?.killAll();
  await cloud?.stop();
  await images?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('the seed files boot the Debian guest and the seed key logs in over SSH', async () => {
  const started = Date.now();
  const register = await cli.run(['do', 'register-image.yaml'], { timeoutMs: 10 * 60_000 });
  expect(register.stderr + register.stdout).not.toMatch(/\[failed\]/);
  expect(register.code).toBe(0);
  timing('seed ssh', 'register-image.yaml', Date.now() - started);

  const bootStarted = Date.now();
  const boot = await cli.run(['do', 'boot-vm-from-image.yaml'], { timeoutMs: 10 * 60_000 });
  expect(boot.code).toBe(0);
  timing('seed ssh', 'boot-vm-from-image.yaml (create -> Running)', Date.now() - bootStarted);
  const vm = JSON.parse((await cli.run(['get', 'vm', 'test-vm', '-o', 'json'])).stdout);
  expect(vm.status.state).toBe('RUNNING');
  // The accelerator is what the node's boot probe chose, and the node says why (n0ctl get node -o wide).
  const node = JSON.parse((await cli.run(['get', 'node', 'vm-host1', '-o', 'json'])).stdout);
  expect(vm.status.accelerator).toBe(node.status.accelerator);
  expect(node.status.accelerator_reason).toMatch(node.status.accelerator === 'kvm' ? /KVM boots/ : /using TCG/);
  const wide = (await cli.run(['get', 'node', '-o', 'wide'])).stdout;
  expect(wide).toContain(node.status.accelerator_reason.slice(0, 40));
  process.stderr.write(`[e2e] seed ssh: VM accelerator ${vm.status.accelerator}; node says: ${node.status.accelerator_reason}\n`);
  expect(vm.status.nics[0].ipv4_address).toBe(VM_IP);

  // The seed's Network has no gateway address, so the host cannot reach its VMs; an operator gives
  // it one declaratively (the agent puts gateway_ipv4 on the node's bridge on its next pass).
  const host = cloud.host('vm-host1');
  await cloud.client.call('NetworkService', 'ApplyNetwork', {
    name: 'test-network', ipv4_cidr: '192.168.0.0/24', gateway_ipv4: '192.168.0.254',
    annotations: { 'n0core/provisioning/virtual_machine/vlan_id': '100' },
  });

  const deadline = Date.now() + 8 * 60_000;
  let login = { code: -1 as number | null, stdout: '', stderr: '' };
  while (Date.now() < deadline) {
    login = await cloud.lab.exec(host.netns, 'ssh', [
      '-i', path.join(dir, 'n0user_ecdsa'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR', `n0user@${VM_IP}`, '--', 'hostname', '&&', 'id', '-un',
    ], { timeoutMs: 30_000 }).catch((e) => ({ code: -1, stdout: '', stderr: String(e) }));
    if (login.code === 0) break;
    await new Promise((r) => setTimeout(r, 5000));
  }
  expect(login.stderr).toBe('');
  expect(login.stdout.trim().split('\n')).toEqual(['test-vm', 'n0user']);
  timing('seed ssh', 'boot -> ssh login', Date.now() - bootStarted);
}, 30 * 60_000);

// Issue [K]'s n0deploy, on the guest the test above booted (the e2e tier boots it once).
test('n0ctl deploy on the Debian guest: bootstrap once, deploy every time, a changed bootstrap again, a failing RUN\'s exit code', async () => {
  await runDeployCases({ cli, dir, netns: cloud.host('vm-host1').netns, key: path.join(dir, 'n0user_ecdsa') });
}, 20 * 60_000);

test('the seed\'s inverse file deletes the VM and what it used', async () => {
  const inverse = await cli.run(['do', 'boot-vm-from-image-inverse.yaml'], { timeoutMs: 5 * 60_000 });
  expect(inverse.code).toBe(0);
  const observed = await (cloud.hosts.get('vm-host1') as TestHost).agent.agent.observe();
  expect(observed.vms).toEqual([]);
}, 30 * 60_000);
