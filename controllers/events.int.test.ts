// Events in `n0ctl describe` (issue [L] item 3): a real control plane (facade, controllers, an
// in-process agent) and the built n0ctl. A VM whose QEMU always aborts (the stand-in QEMU, as in
// vm-failures.int.test.ts) shows Scheduled, then StartFailed with QEMU's words, then
// CrashLoopBackOff counted on one Event; a VM that starts under the real QEMU shows Scheduled and
// Started, its disk Scheduled and Provisioned; `n0ctl get events` lists them, and deleting makes
// a Deleting Event.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestCloud } from '../e2e/cloud';
import { installStandInQemu, MSR_ABORT_LINES, type StandInQemu } from '../agent/drivers/testing/standin-qemu';
import { CliRunner, ensureBuilt } from '../cli/testing/n0ctl';

jest.setTimeout(300_000);

const MiB = 1024 * 1024;
let cloud: TestCloud;
let standIn: StandInQemu;
let cli: CliRunner;
let home: string;
const realPath = process.env.PATH;
const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);
const NODE = { 'n0core/provisioning/block_storage/request_node_name': 'vm-host1' };

async function disk(name: string): Promise<void> {
  const bs = await call('BlockStorageService', 'CreateBlockStorage', { name, annotations: NODE, request_bytes: 64 * MiB, limit_bytes: 64 * MiB });
  expect(bs.state).toBe('AVAILABLE');
}

const vmRequest = (name: string, diskName: string) => ({
  name, annotations: { 'n0core/provisioning/virtual_machine/request_node_name': 'vm-host1' },
  limit_cpu_milli_core: 1000, limit_memory_bytes: 128 * MiB, block_storage_names: [diskName],
});

async function n0ctl(...args: string[]): Promise<string> {
  const r = await cli.run(args, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`n0ctl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The Events section of `n0ctl describe`, once it has a line matching every pattern. */
async function describeEvents(kind: string, name: string, patterns: RegExp[]): Promise<string> {
  const deadline = Date.now() + 20_000;
  let section = '';
  while (Date.now() < deadline) {
    section = (await n0ctl('describe', kind, name)).split(/^Events:/m)[1] ?? '';
    if (patterns.every((p) => p.test(section))) return section;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`n0ctl describe ${kind} ${name}: no events matching ${patterns.join(', ')} in:\n${section}`);
}

beforeAll(async () => {
  ensureBuilt();
  standIn = installStandInQemu({ kvm: 'abort', abortVms: true });
  process.env.PATH = standIn.path;
  cloud = await TestCloud.start({ store: 'embedded', nodes: ['vm-host1'] });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-events-'));
  cli = new CliRunner(home, { PATH: realPath, HOME: home, N0STACK_API_ENDPOINT: cloud.endpoint, N0STACK_TOKEN: cloud.token, N0STACK_CA: cloud.caFile });
});

afterAll(async () => {
  cli?.killAll();
  await cloud?.stop();
  process.env.PATH = realPath;
  standIn?.remove();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

test('n0ctl describe vm of a VM that failed to start shows Scheduled, StartFailed with QEMU\'s words and the crash loop, counted', async () => {
  await disk('ev-abort-disk');
  await expect(call('VirtualMachineService', 'CreateVirtualMachine', vmRequest('ev-abort-vm', 'ev-abort-disk'))).rejects.toThrow(/CrashLoopBackOff/);
  const msr = MSR_ABORT_LINES[0].replace('qemu-system-x86_64: ', '');
  const escaped = msr.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').slice(0, 40);
  // Two more failures after the third: the crash loop's Event is counted, not repeated.
  await new Promise((r) => setTimeout(r, 500));
  const section = await describeEvents('vm', 'ev-abort-vm', [
    /Normal\s+Scheduled\s+.*placed on node vm-host1/,
    new RegExp(`Warning\\s+StartFailed\\s+.*${escaped}`),
    new RegExp(`Warning\\s+CrashLoopBackOff\\s+.*back-off restarting the failed virtual machine: .*${escaped}`),
  ]);
  console.log(`n0ctl describe vm ev-abort-vm, Events:${section}`);
  // StartFailed twice (failures 1 and 2, the same QEMU words): one Event with count 2.
  expect(section).toMatch(/Warning\s+StartFailed\s+\S+ \(x2 over \S+\)/);
  expect(section).not.toMatch(/Started/);

  const events = await n0ctl('get', 'events');
  expect(events).toMatch(/^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+COUNT\s+MESSAGE/);
  expect(events).toMatch(/Warning\s+StartFailed\s+virtualmachine\/ev-abort-vm\s+2\s/);
  const json = JSON.parse(await n0ctl('get', 'events', '-o', 'json')) as { items: any[] };
  expect(json.items.find((e) => e.reason === 'CrashLoopBackOff' && e.involvedObject.name === 'ev-abort-vm')).toMatchObject({
    apiVersion: 'v1', kind: 'Event', type: 'Warning', involvedObject: { kind: 'VirtualMachine', uid: expect.any(String) }, source: { component: 'n0stack-controllers' },
  });
  await call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'ev-abort-vm' });
});

test('n0ctl describe vm of a VM that started shows Scheduled and Started; its disk Provisioned; a delete Deleting; get events -w streams', async () => {
  process.env.PATH = realPath;
  await disk('ev-run-disk');
  const watch = cli.spawn(['get', 'events', '-w']);
  let watched = '';
  watch.stdout!.on('data', (d) => { watched += d; });
  await new Promise((r) => setTimeout(r, 1500));
  const vm = await call('VirtualMachineService', 'CreateVirtualMachine', vmRequest('ev-run-vm', 'ev-run-disk'));
  expect(vm.state).toBe('RUNNING');
  const section = await describeEvents('vm', 'ev-run-vm', [/Normal\s+Scheduled\s+.*placed on node vm-host1/, /Normal\s+Started\s+.*RUNNING on node vm-host1/]);
  console.log(`n0ctl describe vm ev-run-vm, Events:${section}`);
  expect(section).not.toMatch(/Warning/);
  await describeEvents('bs', 'ev-run-disk', [/Normal\s+Scheduled\s+.*on node vm-host1/, /Normal\s+Provisioned\s+.*on node vm-host1/]);

  const deadline = Date.now() + 10_000;
  while (!/Started\s+virtualmachine\/ev-run-vm/.test(watched) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  watch.kill('SIGINT');
  expect(watched).toMatch(/Normal\s+Started\s+virtualmachine\/ev-run-vm/);

  await call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'ev-run-vm' });
  const { items } = await cloud.store.events!.list();
  expect(items.find((e) => e.reason === 'Deleting' && e.involvedObject.name === 'ev-run-vm')).toMatchObject({ type: 'Normal', message: 'deleting virtual machine ev-run-vm from node vm-host1' });
});
