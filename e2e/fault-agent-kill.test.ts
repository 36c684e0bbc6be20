// Fault: kill -9 the node agent while a VM runs. The VM is a detached QEMU process, so it keeps
// running (same pid); the restarted agent re-adopts it through its pidfile and QMP socket, the VM
// stays RUNNING and obeys power actions again, and nothing is started twice.
import './quiet';
import * as fs from 'node:fs';
import { TestCloud } from './cloud';
import { RestartableEtcd } from './etcd';
import { emptyDisk, timing } from './images';

jest.setTimeout(600_000);

const MiB = 1024 ** 2;
const SCENARIO = 'agent kill -9';
let etcd: RestartableEtcd | undefined;
let cloud: TestCloud;
const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);

beforeAll(async () => {
  if (!process.env.N0STACK_TEST_ETCD) etcd = await RestartableEtcd.start();
  cloud = await TestCloud.start({ store: 'etcd', etcdEndpoint: etcd?.endpoint, nodes: ['host-a'], agents: 'process' });
}, 180_000);

afterAll(async () => {
  await cloud?.stop();
  await etcd?.stop();
});

/** A live process (a zombie waiting for its reaper counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

test('a VM outlives its agent and is re-adopted by the next one', async () => {
  await call('NetworkService', 'ApplyNetwork', { name: 'kill-net', ipv4_cidr: '192.168.20.0/24' });
  await emptyDisk(call, 'survivor-disk', 'host-a');
  const started = Date.now();
  const vm = await call('VirtualMachineService', 'CreateVirtualMachine', {
    name: 'survivor', block_storage_names: ['survivor-disk'], request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 64 * MiB, limit_memory_bytes: 64 * MiB,
    nics: [{ network_name: 'kill-net' }],
  });
  timing(SCENARIO, 'create→Running', Date.now() - started);
  expect(vm.state).toBe('RUNNING');
  const [pid] = cloud.qemuPids('host-a', 'survivor');
  expect(cloud.qemuPids('host-a', 'survivor')).toEqual([pid]);
  const taps = (await cloud.observe('host-a')).networks.flatMap((n) => n.taps);
  expect(taps).toHaveLength(1);

  const agentPid = cloud.processHosts.get('host-a')!.proc.pid;
  await cloud.killAgent('host-a');
  expect(alive(agentPid)).toBe(false);
  // The guest does not notice: QEMU runs on, with its tap.
  await new Promise((r) => setTimeout(r, 3000));
  expect(cloud.qemuPids('host-a', 'survivor')).toEqual([pid]);
  // While no agent answers, the controllers say so rather than guess.
  const meanwhile = await cloud.store.get('VirtualMachine', 'survivor');
  process.stderr.write(`[e2e] ${SCENARIO}: VM state while the agent is dead: ${meanwhile.status?.state} (${meanwhile.status?.conditions?.find((c) => c.type === 'Ready')?.reason})\n`);
  expect(['RUNNING', 'UNKNOWN']).toContain(meanwhile.status?.state);
  const orphaned = await cloud.observe('host-a');
  expect(orphaned.vms.map((v) => [v.name, v.runState, v.pid])).toEqual([['survivor', 'running', pid]]);

  const restarted = Date.now();
  await cloud.restartAgent('host-a');
  // Re-adopted: RUNNING as seen by a reconcile after the restart, the same process, nothing doubled.
  await cloud.waitVm('survivor', (v) => v.status?.state === 'RUNNING' && !!v.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'), 60_000);
  timing(SCENARIO, 'agent restart→RUNNING', Date.now() - restarted);
  // A power action goes through the new agent to the adopted QEMU (QMP), proving control is back.
  const actionStarted = Date.now();
  expect((await call('VirtualMachineService', 'SaveVirtualMachine', { name: 'survivor' })).state).toBe('PAUSED');
  expect((await call('VirtualMachineService', 'BootVirtualMachine', { name: 'survivor' })).state).toBe('RUNNING');
  timing(SCENARIO, 'restart→pause+resume through the new agent', Date.now() - actionStarted);
  expect(cloud.qemuPids('host-a', 'survivor')).toEqual([pid]);
  const after = await cloud.observe('host-a');
  expect(after.vms.map((v) => [v.name, v.runState, v.pid])).toEqual([['survivor', 'running', pid]]);
  expect(after.networks.flatMap((n) => n.taps)).toEqual(taps);

  await call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'survivor' });
  await call('NetworkService', 'DeleteNetwork', { name: 'kill-net' });
  await call('BlockStorageService', 'DeleteBlockStorage', { name: 'survivor-disk' });
  expect(alive(pid)).toBe(false);
  expect(cloud.qemuPids('host-a', 'survivor')).toEqual([]);
  const end = await cloud.observe('host-a');
  expect(end.vms).toEqual([]);
  expect(end.networks.filter((n) => n.present)).toEqual([]);
  expect(end.blockStorages.filter((b) => b.present)).toEqual([]);
});
