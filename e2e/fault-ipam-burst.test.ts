// 50 concurrent CreateVirtualMachine calls for addresses in one /27 (30 usable): the successes
// hold no duplicate IP or MAC, the rest fail with FAILED_PRECONDITION naming the full network,
// and deleting all 50 releases every reservation and process. The VMs are spread over 7 hosts
// (a 2-core host takes 8 one-vCPU VMs at 4x overcommit), so only the network runs out.
import { renderedNode } from '../api/placement';
import './quiet';
import { TestCloud } from './cloud';
import { emptyDisk, timing } from './images';
import { listAddresses } from '../api/addresses';

jest.setTimeout(900_000);

const MiB = 1024 ** 2;
const SCENARIO = 'ipam burst';
const CALLS = 50;
const HOSTS = Array.from({ length: 7 }, (_, i) => `host-${i + 1}`);
let cloud: TestCloud;
const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);

beforeAll(async () => {
  cloud = await TestCloud.start({ store: 'embedded', nodes: HOSTS });
}, 180_000);

afterAll(async () => {
  await cloud?.stop();
});

test('50 creates in a /27: unique addresses for the winners, a clear error for the rest', async () => {
  await call('NetworkService', 'ApplyNetwork', { name: 'small-net', ipv4_cidr: '192.168.40.0/27' });
  const names = Array.from({ length: CALLS }, (_, i) => `crowd-${String(i).padStart(2, '0')}`);
  const disksStarted = Date.now();
  await Promise.all(names.map((name, i) => emptyDisk(call, `${name}-disk`, HOSTS[i % HOSTS.length])));
  timing(SCENARIO, `${CALLS} empty disks`, Date.now() - disksStarted);
  const started = Date.now();
  const results = await Promise.allSettled(names.map((name) => call('VirtualMachineService', 'CreateVirtualMachine', {
    name, block_storage_names: [`${name}-disk`], request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 64 * MiB, limit_memory_bytes: 64 * MiB,
    nics: [{ network_name: 'small-net' }],
  })));
  timing(SCENARIO, `${CALLS} concurrent creates settled`, Date.now() - started);
  const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error & { codeName?: string }] : []));
  process.stderr.write(`[e2e] ${SCENARIO}: ${ok.length} running, ${errors.length} refused\n`);

  // A /27 has 30 host addresses; every one may go to a VM, none twice.
  expect(ok.length).toBeGreaterThan(0);
  expect(ok.length).toBeLessThanOrEqual(30);
  expect(ok.length + errors.length).toBe(CALLS);
  for (const vm of ok) expect(vm.state).toBe('RUNNING');
  const ips = ok.map((vm) => vm.nics[0].ipv4_address);
  const macs = ok.map((vm) => vm.nics[0].hardware_address);
  expect(new Set(ips).size).toBe(ips.length);
  expect(new Set(macs).size).toBe(macs.length);
  for (const ip of ips) expect(ip).toMatch(/^192\.168\.40\.([1-9]|[12]\d|30)$/);
  for (const err of errors) {
    expect(`${err.codeName ?? ''} ${err.message}`).toContain('FAILED_PRECONDITION');
    expect(err.message).toMatch(/small-net.*no free IPv4 address|no free IPv4 address.*small-net/);
  }
  // The address objects agree: one IPv4 and one MAC per running VM, those the VMs report; the refused lent nothing.
  const lent = await listAddresses(cloud.store, 'small-net');
  expect(lent.filter((a) => a.spec.family === 'ipv4').map((a) => a.spec.address).sort()).toEqual([...ips].sort());
  expect(lent.filter((a) => a.spec.family === 'mac').map((a) => a.spec.address).sort()).toEqual([...macs].sort());
  expect((await cloud.store.get('Network', 'small-net')).status?.reserved_network_interfaces).toBeUndefined();
  let vmsOnHosts = 0;
  for (const host of HOSTS) vmsOnHosts += (await cloud.observe(host)).vms.length;
  expect(vmsOnHosts).toBe(ok.length);

  const deleteStarted = Date.now();
  await Promise.all(names.map((name) => call('VirtualMachineService', 'DeleteVirtualMachine', { name })));
  timing(SCENARIO, `delete ${CALLS}`, Date.now() - deleteStarted);
  expect(await listAddresses(cloud.store, 'small-net')).toEqual([]);
  await call('NetworkService', 'DeleteNetwork', { name: 'small-net' });
  await Promise.all(names.map((name) => call('BlockStorageService', 'DeleteBlockStorage', { name: `${name}-disk` })));
  expect((await call('VirtualMachineService', 'ListVirtualMachines', {})).virtual_machines ?? []).toEqual([]);
  for (const host of HOSTS) {
    expect((await renderedNode(cloud.store, host)).status?.reserved_computes ?? {}).toEqual({});
    const after = await cloud.observe(host);
    expect(after.vms).toEqual([]);
    expect(after.networks.filter((n) => n.present)).toEqual([]);
    expect(after.blockStorages.filter((b) => b.present)).toEqual([]);
  }
});
