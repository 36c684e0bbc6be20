// The simulated agent of the scale benchmarks must keep the AgentApi contract the controllers
// rely on: validation, idempotent ensures, typed errors, and an observe that lists what exists.
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../api/errors';
import { SimulatedAgent } from './simulated';

const fast = { createDiskMs: 1, ensureNetworkMs: 1, ensureVmMs: 1, vmActionMs: 1, deleteMs: 1 };
const vmReq = (name: string) => ({
  name, uuid: '056d2ccd-0c4c-44dc-a2c8-39a9d394b51f', vcpus: 1, memoryBytes: 128 * 1024 * 1024,
  blockStorageNames: ['disk1'], nics: [{ networkName: 'net1', hardwareAddress: '02:00:00:00:00:01' }],
  sshAuthorizedKeys: [], runState: 'RUNNING' as const,
});

let agent: SimulatedAgent;
beforeEach(() => { agent = new SimulatedAgent({ nodeName: 'sim-node1', latencies: fast }); });
afterEach(() => agent.close());

test('ensures are idempotent and observe lists what exists', async () => {
  const base = await agent.ensureBlockStorage({ name: 'base', limitBytes: 2 ** 30 });
  expect(base).toMatchObject({ name: 'base', present: true, info: { virtualSize: 2 ** 30 } });
  const overlay = await agent.ensureBlockStorage({ name: 'disk1', limitBytes: 2 * 2 ** 30, backingFrom: 'base' });
  expect(overlay.info?.backingFile).toContain('base');
  expect(await agent.ensureBlockStorage({ name: 'disk1', limitBytes: 2 * 2 ** 30, backingFrom: 'base' })).toEqual(overlay);
  const net = await agent.ensureNetwork({ name: 'net1', segmentId: 7, peers: ['10.0.0.2'] });
  expect(net).toMatchObject({ present: true, segmentId: 7, bridgeName: expect.any(String) });
  const vm = await agent.ensureVm(vmReq('vm1'));
  expect(vm).toMatchObject({ present: true, runState: 'running', accelerator: 'kvm' });
  const again = await agent.ensureVm(vmReq('vm1'));
  expect(again.pid).toBe(vm.pid);
  expect(agent.calls.ensureVm).toBe(2);

  const obs = await agent.observe();
  expect(obs.nodeName).toBe('sim-node1');
  expect(obs.blockStorages.map((b) => b.name)).toEqual(['base', 'disk1']);
  expect(obs.networks).toHaveLength(1);
  expect(obs.networks[0].taps).toHaveLength(1);
  expect(obs.vms).toEqual([expect.objectContaining({ name: 'vm1', runState: 'running', pid: vm.pid })]);

  await expect(agent.deleteBlockStorage('disk1')).rejects.toBeInstanceOf(FailedPreconditionError);
  await agent.deleteVm('vm1');
  await agent.deleteVm('vm1');
  await agent.deleteBlockStorage('disk1');
  const after = await agent.observe();
  expect(after.vms).toEqual([]);
  expect(after.networks[0].taps).toEqual([]);
  expect(after.blockStorages.map((b) => b.name)).toEqual(['base']);
});

test('power state follows runState and actions; errors are typed', async () => {
  await agent.ensureBlockStorage({ name: 'disk1', limitBytes: 2 ** 30 });
  await expect(agent.ensureVm(vmReq('vm1'))).rejects.toThrow(/net1.*not set up/);
  await agent.ensureNetwork({ name: 'net1', segmentId: 7, peers: [] });
  expect((await agent.ensureVm({ ...vmReq('vm1'), runState: 'PAUSED' })).runState).toBe('paused');
  expect((await agent.ensureVm(vmReq('vm1'))).runState).toBe('running');
  expect((await agent.vmAction('vm1', 'HARD_SHUTDOWN')).runState).toBe('shutdown');
  await expect(agent.vmAction('vm1', 'REBOOT')).rejects.toBeInstanceOf(FailedPreconditionError);
  expect((await agent.vmAction('vm1', 'BOOT')).runState).toBe('running');
  await expect(agent.vmAction('nope', 'BOOT')).rejects.toBeInstanceOf(NotFoundError);
  await expect(agent.ensureVm({ ...vmReq('../etc'), blockStorageNames: [] })).rejects.toBeInstanceOf(InvalidArgumentError);
  await expect(agent.ensureVm({ ...vmReq('vm2'), blockStorageNames: ['missing'] })).rejects.toThrow(/missing.*does not exist/);
  const console = await agent.openConsole('vm1', 'serial');
  const got: string[] = [];
  console.onData((c) => got.push(c.toString()));
  console.write(Buffer.from('hi'));
  console.close();
  expect(got).toEqual(['hi']);
});

test('a fetch runs in the background at the configured speed and reports progress', async () => {
  agent.close();
  agent = new SimulatedAgent({ nodeName: 'sim-node1', latencies: { fetchMBps: 100, fetchBytes: 10e6 } });
  const first = await agent.ensureBlockStorage({ name: 'img', limitBytes: 2 ** 30, sourceUrl: 'http://127.0.0.1:1/x.qcow2' });
  expect(first).toMatchObject({ present: false, inProgress: { phase: 'fetch', bytesTotal: 10e6 } });
  const started = Date.now();
  let obs = first;
  while (!obs.present && Date.now() - started < 5000) {
    await new Promise((r) => setTimeout(r, 20));
    obs = await agent.ensureBlockStorage({ name: 'img', limitBytes: 2 ** 30, sourceUrl: 'http://127.0.0.1:1/x.qcow2' });
  }
  expect(obs.present).toBe(true);
  // 10 MB at 100 MB/s: about 100 ms, never instantaneous.
  expect(Date.now() - started).toBeGreaterThanOrEqual(80);
  await expect(agent.ensureBlockStorage({ name: 'c', limitBytes: 2 ** 30, copyFrom: 'absent' })).rejects.toBeInstanceOf(FailedPreconditionError);
});
