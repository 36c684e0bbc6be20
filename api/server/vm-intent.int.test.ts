// A power action whose write races another write of the same VM: a status write (the controller
// reporting) leaves the intent standing, so the facade judges it again and writes it; another
// spec change (a concurrent action) makes it ABORTED, never a lost or doubled intent.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore, type Store } from '../store';
import { API_VERSION, type AnyResource, type VirtualMachine } from '../types';
import { virtualMachineService } from './virtualmachine';

let dir: string;
let store: Store;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-vm-intent-'));
  store = await openStore({ backend: 'embedded', dataDir: dir });
});
afterAll(async () => { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); });

/** A store whose first spec update is preceded by `race` (another writer getting there first). */
function racing(race: (vm: VirtualMachine) => Promise<unknown>): Store {
  let raced = false;
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== 'update') return Reflect.get(target, prop, receiver);
      return async (doc: AnyResource, options?: { subresource?: string }) => {
        if (!raced && options?.subresource !== 'status') { raced = true; await race(await target.get('VirtualMachine', doc.metadata.name)); }
        return target.update(doc, options as never);
      };
    },
  });
}

async function shutDownVm(name: string): Promise<VirtualMachine> {
  const vm = await store.create({
    apiVersion: API_VERSION, kind: 'VirtualMachine', metadata: { name },
    spec: { request_cpu_milli_core: 1000, limit_cpu_milli_core: 1000, request_memory_bytes: 512 << 20, limit_memory_bytes: 512 << 20, block_storage_names: [], nics: [], run_state: 'SHUTDOWN' },
  } as unknown as VirtualMachine);
  return store.update({ ...vm, status: { state: 'SHUTDOWN', observedGeneration: 1 } } as VirtualMachine, { subresource: 'status' });
}

const boot = (s: Store, name: string) => virtualMachineService({ store: s, defaultWaitMs: 1_000 }).BootVirtualMachine({ name }, { deadline: Date.now() + 300, signal: new AbortController().signal });

test('a Boot that races the controller\'s status write is judged again and written once', async () => {
  await shutDownVm('raced-by-status');
  const s = racing((vm) => store.update({ ...vm, status: { ...vm.status, conditions: [{ type: 'Ready', status: 'False', reason: 'Stopped', message: 'x', lastTransitionTime: new Date().toISOString() }] } } as VirtualMachine, { subresource: 'status' }));
  // Nothing reconciles here, so the wait runs out; what matters is the intent written.
  await expect(boot(s, 'raced-by-status')).rejects.toMatchObject({ code: 'DeadlineExceeded' });
  const vm = await store.get('VirtualMachine', 'raced-by-status');
  expect(vm.spec.run_state).toBe('RUNNING');
  expect(vm.metadata.generation).toBe(2);
});

test('a Boot that races another spec change is ABORTED, and the other change stands', async () => {
  await shutDownVm('raced-by-spec');
  const s = racing((vm) => store.update({ ...vm, spec: { ...vm.spec, request_memory_bytes: 1024 << 20, limit_memory_bytes: 1024 << 20 } }));
  await expect(boot(s, 'raced-by-spec')).rejects.toMatchObject({ code: 'Conflict' });
  const vm = await store.get('VirtualMachine', 'raced-by-spec');
  expect(vm.spec.run_state).toBe('SHUTDOWN');
  expect(vm.spec.request_memory_bytes).toBe(1024 << 20);
});
