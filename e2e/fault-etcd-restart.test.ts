// Fault: etcd is killed (-9) and restarted in the middle of a burst of CreateVirtualMachine calls.
// Every create the facade acknowledged exists afterwards and runs; every other one either exists
// fully (runs, one QEMU, one reservation) or not at all (no process, no reservation).
import { renderedNode } from '../api/placement';
import './quiet';
import { TestCloud } from './cloud';
import { RestartableEtcd } from './etcd';
import { emptyDisk, timing } from './images';

jest.setTimeout(900_000);

const MiB = 1024 ** 2;
const SCENARIO = 'etcd restart';
const BURST = 12;
let etcd: RestartableEtcd;
let cloud: TestCloud;
const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);

beforeAll(async () => {
  etcd = await RestartableEtcd.start();
  cloud = await TestCloud.start({ store: 'etcd', etcdEndpoint: etcd.endpoint, nodes: ['host-a'] });
}, 180_000);

afterAll(async () => {
  await cloud?.stop();
  await etcd?.stop();
});

async function getVm(name: string): Promise<any | undefined> {
  try {
    return await call('VirtualMachineService', 'GetVirtualMachine', { name });
  } catch (err) {
    if (/NOT_FOUND/.test(`${(err as any).codeName ?? ''} ${(err as Error).message}`)) return undefined;
    throw err;
  }
}

async function retry<T>(fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try { return await fn(); } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

test('acknowledged creates survive an etcd crash; the others exist fully or not at all', async () => {
  const names = Array.from({ length: BURST }, (_, i) => `burst-${i}`);
  for (const name of names) await emptyDisk(call, `${name}-disk`, 'host-a');
  const started = Date.now();
  const creates = names.map((name, i) => new Promise((r) => setTimeout(r, i * 40)).then(() => call('VirtualMachineService', 'CreateVirtualMachine', {
    name, block_storage_names: [`${name}-disk`], request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 64 * MiB, limit_memory_bytes: 64 * MiB,
  })));
  // Mid-burst: some creates are written, some in flight, some not sent yet.
  await new Promise((r) => setTimeout(r, 250));
  await etcd.kill();
  const killedAt = Date.now();
  await new Promise((r) => setTimeout(r, 2000));
  await etcd.restart();
  timing(SCENARIO, 'etcd down (kill -9 → healthy again)', Date.now() - killedAt);
  const results = await Promise.allSettled(creates);
  timing(SCENARIO, `burst of ${BURST} creates settled`, Date.now() - started);
  const acknowledged = names.filter((_, i) => results[i].status === 'fulfilled');
  const failed = names.filter((_, i) => results[i].status === 'rejected');
  process.stderr.write(`[e2e] ${SCENARIO}: ${acknowledged.length} acknowledged, ${failed.length} failed: ${failed.map((n, i) => `${n}: ${((results[names.indexOf(n)] as PromiseRejectedResult).reason as Error).message.slice(0, 120)}`).join(' | ')}\n`);
  for (const name of acknowledged) expect((results[names.indexOf(name)] as PromiseFulfilledResult<any>).value.state).toBe('RUNNING');

  // Converged: every VM that exists runs once with its reservation; the rest left no trace.
  const convergeStarted = Date.now();
  const existing: string[] = [];
  for (const name of names) {
    const vm = await retry(() => getVm(name), 60_000);
    if (acknowledged.includes(name)) expect(vm).toBeDefined();
    if (!vm) continue;
    existing.push(name);
    await retry(async () => {
      const now = await getVm(name);
      if (now?.state !== 'RUNNING') throw new Error(`${name} is ${now?.state}`);
    }, 180_000);
  }
  timing(SCENARIO, 'all existing VMs RUNNING after the restart', Date.now() - convergeStarted);
  const node = await renderedNode(cloud.store, 'host-a');
  const reserved = Object.keys(node.status?.reserved_computes ?? {}).sort();
  expect(reserved).toEqual([...existing].sort());
  for (const name of names) expect(cloud.qemuPids('host-a', name)).toHaveLength(existing.includes(name) ? 1 : 0);
  const observed = await cloud.observe('host-a');
  expect(observed.vms.map((v) => v.name).sort()).toEqual([...existing].sort());

  for (const name of existing) await call('VirtualMachineService', 'DeleteVirtualMachine', { name });
  for (const name of names) await call('BlockStorageService', 'DeleteBlockStorage', { name: `${name}-disk` });
  expect((await renderedNode(cloud.store, 'host-a')).status?.reserved_computes ?? {}).toEqual({});
  const end = await cloud.observe('host-a');
  expect(end.vms).toEqual([]);
  expect(end.blockStorages.filter((b) => b.present)).toEqual([]);
});
