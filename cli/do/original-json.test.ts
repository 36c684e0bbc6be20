import { PassThrough } from 'node:stream';
import { goCodeName, originalJson, rfc3339 } from './original-json';
import { OriginalRenderer } from './render';
import type { TaskStatus } from './run';

describe('a response as the original n0cli printed it', () => {
  it('keeps the proto names, enum names and 64-bit strings; leaves proto3 defaults out', () => {
    // What FacadeClient hands back (defaults filled in, uint64 as strings).
    const node = {
      name: 'vm-host1', annotations: { 'github.com/n0stack/n0stack/n0core/agent_version': '52' }, address: '192.168.122.10', ipmi_address: '', serial: 'Specified',
      cpu_milli_cores: 1000, memory_bytes: '1033236480', storage_bytes: '107374182400', datacenter: '', availability_zone: '', cell: '', rack: '', unit: 1,
      state: 'Ready', reserved_computes: { debug: { annotations: {}, request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: '536870912', limit_memory_bytes: '536870912' } },
      reserved_storages: {}, labels: {}, agent_endpoint: '', accelerator: 'kvm', last_heartbeat_time: '', unschedulable: false, conditions: [], exact_state: 'Ready',
    };
    expect(JSON.stringify(originalJson('n0stack.pool.Node', node))).toBe(JSON.stringify({
      name: 'vm-host1', annotations: { 'github.com/n0stack/n0stack/n0core/agent_version': '52' }, address: '192.168.122.10', serial: 'Specified',
      cpu_milli_cores: 1000, memory_bytes: '1033236480', storage_bytes: '107374182400', unit: 1, state: 'Ready',
      reserved_computes: { debug: { request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: '536870912', limit_memory_bytes: '536870912' } },
      accelerator: 'kvm', exact_state: 'Ready',
    }));
    // jsonpb's order is the message's, whatever order the object's keys came in (the facade's
    // converter put conditions first, so `n0ctl get node -o seed` began with them).
    const scrambled = Object.fromEntries(Object.entries(node).reverse());
    expect(Object.keys(originalJson('n0stack.pool.Node', scrambled))).toEqual(['name', 'annotations', 'address', 'serial', 'cpu_milli_cores', 'memory_bytes', 'storage_bytes', 'unit', 'state', 'reserved_computes', 'accelerator', 'exact_state']);
    // An enum at its value 0 is left out as jsonpb leaves it out; the exact state stays.
    expect(originalJson('n0stack.pool.Node', { ...node, state: 'NotReady', exact_state: 'Unknown' })).not.toHaveProperty('state');
    expect(originalJson('n0stack.provisioning.VirtualMachine', { name: 'v', state: 'RUNNING', limit_memory_bytes: '0', nics: [{ network_name: 'n', annotations: {}, ipv4_address: '' }] }))
      .toEqual({ name: 'v', state: 'RUNNING', nics: [{ network_name: 'n' }] });
  });

  it('renders Timestamps in RFC 3339 as jsonpb does', () => {
    expect(rfc3339({ seconds: '1551571200', nanos: 0 })).toBe('2019-03-03T00:00:00Z');
    expect(rfc3339({ seconds: 1551571200, nanos: 5e8 })).toBe('2019-03-03T00:00:00.500Z');
    expect(rfc3339({ seconds: 1, nanos: 1500 })).toBe('1970-01-01T00:00:01.000001500Z');
    expect(originalJson('n0stack.deployment.Image', { name: 'i', registered_block_storages: [{ block_storage_name: 'b', registered_at: { seconds: '1551571200', nanos: 0 } }], tags: { v1: 'b' } }))
      .toEqual({ name: 'i', registered_block_storages: [{ block_storage_name: 'b', registered_at: '2019-03-03T00:00:00Z' }], tags: { v1: 'b' } });
  });

  it('names gRPC codes as grpc-go does', () => {
    expect(['NOT_FOUND', 'FAILED_PRECONDITION', 'CANCELLED', 'OK', 'UNAVAILABLE'].map(goCodeName)).toEqual(['NotFound', 'FailedPrecondition', 'Canceled', 'OK', 'Unavailable']);
  });

  it('prints the original\'s lines: started, [ n/N ] finished with the JSON, failed', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d) => { text += d; });
    const task = (name: string) => ({ name, type: 'Network', action: 'ApplyNetwork', args: {}, depends_on: [], ignore_error: false }) as TaskStatus['task'];
    const r = new OriginalRenderer(out, 3, (s) => ({ name: s.name }));
    r.update({ name: 'A', task: task('A'), state: 'running' });
    r.update({ name: 'A', task: task('A'), state: 'running', message: 'again' });
    r.update({ name: 'A', task: task('A'), state: 'done', result: {} });
    r.update({ name: 'B', task: task('B'), state: 'running' });
    r.update({ name: 'B', task: task('B'), state: 'failed', error: 'rpc error: code = NotFound desc = x' });
    r.update({ name: 'C', task: task('C'), state: 'skipped', reason: 'B failed' });
    expect(text).toBe([
      "---> Task 'A' is started",
      "---> [ 1/3 ] Task 'A' is finished",
      '{\n  "name": "A"\n}',
      "---> Task 'B' is started",
      "---> [ 2/3 ] Task 'B' is failed: got error response: rpc error: code = NotFound desc = x",
      '',
    ].join('\n'));
  });
});
