// A VM's pass does not run again for news it made itself (its status writes, finalizer and disk
// claim), yet anything else that asks (a spec change, the audit finding it gone from its node)
// still gets a pass: the real controllers over the embedded store, one simulated agent counting
// ensureVm calls, the last step of every VM pass that gets that far.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore } from '../api/store';
import type { Store } from '../api/store/store';
import type { BlockStorage, Network, VirtualMachine } from '../api/types';
import type { AgentApi, EnsureVmRequest } from '../agent/api';
import { SimulatedAgent } from '../agent/drivers/simulated';
import { nodeDocument, readyStatus, StoreNodeRegistrar } from '../agent/registration';
import { startControllers, type RunningControllers } from '../cli/controlplane';

jest.setTimeout(60_000);
const GiB = 2 ** 30;

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('VM passes', () => {
  let dir: string;
  let store: Store;
  let agent: SimulatedAgent;
  let controllers: RunningControllers;
  const stop = new AbortController();
  const ensured: string[] = [];
  const passes = (name: string) => ensured.filter((n) => n === name).length;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-vm-passes-'));
    store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
    agent = new SimulatedAgent({ nodeName: 'host1' });
    const counting = new Proxy(agent, { get: (t, p, r) => (p === 'ensureVm' ? (req: EnsureVmRequest) => { ensured.push(req.name); return t.ensureVm(req); } : Reflect.get(t, p, r)) }) as AgentApi;
    const facts = { nodeName: 'host1', address: '10.255.0.1', agentEndpoint: 'host1.sim:20181', accelerator: 'kvm' as const, agentVersion: 'simulated', capacity: { cpuMilliCores: 64_000, memoryBytes: 64 * GiB, storageBytes: 1024 * GiB } };
    const registrar = new StoreNodeRegistrar(store);
    await registrar.register(nodeDocument(facts));
    await registrar.heartbeat('host1', readyStatus(facts));
    controllers = await startControllers({ store, agentFor: () => counting, signal: stop.signal });
    await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: 'net' }, spec: { ipv4_cidr: '10.1.0.0/24' } } as Network);
    await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'BlockStorage', metadata: { name: 'disk' }, spec: { request_bytes: GiB, limit_bytes: GiB, node_name: 'host1' } } as BlockStorage);
    await until('the disk to be AVAILABLE', async () => (await store.get('BlockStorage', 'disk')).status?.state === 'AVAILABLE');
  });
  afterAll(async () => {
    stop.abort();
    await controllers?.manager.stopped.catch(() => undefined);
    agent?.close();
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs a new VM to RUNNING in one pass that reaches the agent, and again only when asked', async () => {
    await store.create({
      apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm1' },
      spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 256 * 2 ** 20, block_storage_names: ['disk'], nics: [{ network_name: 'net' }], run_state: 'RUNNING' },
    } as VirtualMachine);
    await until('vm1 to be RUNNING', async () => (await store.get('VirtualMachine', 'vm1')).status?.state === 'RUNNING');
    // Its own writes' events have all come back by now; none may have run the pass again.
    await new Promise((r) => setTimeout(r, 500));
    expect(passes('vm1')).toBe(1);

    // The agent loses the VM behind the controller's back: the audit's nudge gets a pass although
    // the VM object itself did not change.
    await agent.deleteVm('vm1');
    await until('the audit to reconcile vm1 again', () => passes('vm1') === 2, 30_000);
    await until('vm1 to run on the agent again', async () => (await agent.observe()).vms.some((v) => v.name === 'vm1'));

    // Someone else's write (a new run_state) is news: the VM is shut down through the agent.
    const vm = await store.get('VirtualMachine', 'vm1');
    await store.update({ ...vm, spec: { ...vm.spec, run_state: 'SHUTDOWN' } });
    await until('vm1 to be SHUTDOWN', async () => (await store.get('VirtualMachine', 'vm1')).status?.state === 'SHUTDOWN');
    expect(passes('vm1')).toBe(3);
  });
});
