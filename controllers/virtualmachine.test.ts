// The VM controller's audit (one ListVms per Ready node, a reconcile only for the VMs whose state
// on the node differs from their status) and its watches: every VM when the overlay's nodes
// change, the VMs of a Network whose spec changed.
import type { AgentApi, VmObservation } from '../agent/api';
import { UnavailableError } from '../api/errors';
import type { Kind, KindMap, Network, Node, VirtualMachine } from '../api/types';
import type { AuditContext, Cache } from './runtime/types';
import { crashStatus, CRASH_LOOP_AFTER, restartBackoffMs, VirtualMachineReconciler } from './virtualmachine';

const node = (name: string, address: string, ready = true): Node => ({
  apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name }, spec: { address }, status: { state: ready ? 'Ready' : 'NotReady' },
} as Node);
const vm = (name: string, nodeName: string, state: string, network = 'net'): VirtualMachine => ({
  apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name },
  spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 2 ** 28, nics: [{ network_name: network }] },
  status: { node_name: nodeName, state },
} as VirtualMachine);
const network = (name: string, generation: number): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name, generation }, spec: { ipv4_cidr: '10.0.0.0/24' } });

describe('VirtualMachineReconciler audit and watches', () => {
  let objects: { Node: Node[]; VirtualMachine: VirtualMachine[]; Network: Network[] };
  let onNode: Record<string, VmObservation[] | Error>;
  let listed: string[];
  let enqueued: string[];
  let reconciler: VirtualMachineReconciler;

  /** A cache over `objects`, with the reconciler's own indexes. */
  function cache(): Cache {
    const list = <K extends Kind>(kind: K) => ((objects as unknown as Record<string, KindMap[K][]>)[kind] ?? []);
    return {
      get: (kind, name) => list(kind).find((o) => o.metadata.name === name),
      list,
      byIndex: (kind, index, key) => {
        const spec = reconciler.indexes.find((i) => i.kind === kind && i.name === index)!;
        return list(kind).filter((o) => spec.keys(o).includes(key));
      },
    };
  }
  const audit = async () => {
    enqueued = [];
    listed = [];
    const ctx: AuditContext = { cache: cache(), signal: new AbortController().signal, enqueue: (kind, name) => { expect(kind).toBe('VirtualMachine'); enqueued.push(name); } };
    await reconciler.audit.run(ctx);
    return [...new Set(enqueued)].sort();
  };

  beforeEach(() => {
    objects = { Node: [node('n1', '10.0.0.1'), node('n2', '10.0.0.2'), node('n3', '10.0.0.3', false)], VirtualMachine: [], Network: [network('net', 1), network('other', 1)] };
    onNode = {};
    reconciler = new VirtualMachineReconciler((nodeName) => ({
      listVms: async () => {
        listed.push(nodeName);
        const answer = onNode[nodeName] ?? [];
        if (answer instanceof Error) throw answer;
        return answer;
      },
    }) as unknown as AgentApi);
  });

  it('reconciles only the VMs whose state on their node differs, asking each Ready node once', async () => {
    objects.VirtualMachine = [vm('ok', 'n1', 'RUNNING'), vm('crashed', 'n1', 'RUNNING'), vm('vanished', 'n1', 'RUNNING'), vm('stopped', 'n2', 'SHUTDOWN'), vm('lost', 'n3', 'UNKNOWN')];
    onNode.n1 = [{ name: 'ok', present: true, runState: 'running' }, { name: 'crashed', present: true, runState: 'crashed' }];
    onNode.n2 = [{ name: 'stopped', present: true, runState: 'shutdown' }];
    expect(await audit()).toEqual(['crashed', 'vanished']);
    // n3 is NotReady: its VMs are the Node watch's business, and its agent is not asked.
    expect(listed.sort()).toEqual(['n1', 'n2']);
  });

  it('reconciles every VM of a node whose agent cannot be asked', async () => {
    objects.VirtualMachine = [vm('a', 'n1', 'RUNNING'), vm('b', 'n1', 'RUNNING'), vm('c', 'n2', 'RUNNING')];
    onNode.n1 = new UnavailableError('connection refused');
    onNode.n2 = [{ name: 'c', present: true, runState: 'running' }];
    expect(await audit()).toEqual(['a', 'b']);
  });

  it('requeues every VM when a node joins or leaves the overlay, and a Network\'s VMs when its spec changes, not on heartbeats or status writes', () => {
    objects.VirtualMachine = [vm('a', 'n1', 'RUNNING', 'net'), vm('b', 'n2', 'RUNNING', 'other')];
    const map = (kind: string, obj: unknown, old?: unknown) => reconciler.watches.find((w) => w.kind === kind)!.map(obj as never, cache(), old as never).sort();
    const n4 = node('n4', '10.0.0.4', false);
    const n4ready = node('n4', '10.0.0.4');
    // A heartbeat: status changes, readiness and address do not.
    expect(map('Node', { ...n4ready, status: { ...n4ready.status, last_heartbeat_time: 'later' } }, n4ready)).toEqual([]);
    expect(map('Node', n4ready, n4)).toEqual(['a', 'b']);
    expect(map('Node', { ...n4ready, spec: { address: '10.0.0.5' } }, n4ready)).toEqual(['a', 'b']);
    // A node that is not Ready: its own VMs (their state there is unknown).
    expect(map('Node', node('n1', '10.0.0.1', false))).toEqual(['a']);
    expect(map('Network', network('net', 2), network('net', 1))).toEqual(['a']);
    expect(map('Network', { ...network('net', 1), status: { reserved_network_interfaces: {} } }, network('net', 1))).toEqual([]);
    expect(map('Network', network('net', 1))).toEqual([]);
  });
});

describe('crashStatus: a failed QEMU is counted once per instance, backs off, and becomes a crash loop', () => {
  const t0 = Date.parse('2026-12-01T12:00:00Z');
  const abort = (startedAt: string) => ({ failure: { message: 'QEMU exited (SIGABRT) during start: failed to set MSR 0x10a', startedAt } });

  it('doubles the back-off from 2 s up to 5 min', () => {
    expect([1, 2, 3, 4, 9, 20].map(restartBackoffMs)).toEqual([2_000, 4_000, 8_000, 16_000, 300_000, 300_000]);
  });
  it('reports the first failures as StartFailed, then CrashLoopBackOff with QEMU\'s words', () => {
    const first = crashStatus(undefined, abort('a'), t0);
    expect(first.fields).toMatchObject({ state: 'FAILED', start_failures: 1, last_failed_start: 'a', next_start_time: '2026-12-01T12:00:02.000Z' });
    expect(first.condition).toMatchObject({ reason: 'StartFailed', message: 'starting again in 2 s: QEMU exited (SIGABRT) during start: failed to set MSR 0x10a' });
    expect(first.retryInMs).toBe(2_000);
    const second = crashStatus({ ...first.fields }, abort('b'), t0 + 2_500);
    expect(second.fields.start_failures).toBe(2);
    expect(second.condition.reason).toBe('StartFailed');
    const third = crashStatus({ ...second.fields }, abort('c'), t0 + 7_000);
    expect(third.fields.start_failures).toBe(CRASH_LOOP_AFTER);
    expect(third.condition.reason).toBe('CrashLoopBackOff');
    expect(third.condition.message).toMatch(/^crash loop: 3 consecutive failures; starting again in 8 s: QEMU exited/);
  });
  it('counts the same failed instance once however often it is reconciled, keeping its back-off', () => {
    const first = crashStatus(undefined, abort('a'), t0);
    const again = crashStatus({ ...first.fields }, abort('a'), t0 + 500);
    expect(again.fields.start_failures).toBe(1);
    expect(again.fields.next_start_time).toBe(first.fields.next_start_time);
    expect(again.retryInMs).toBe(1_500);
  });
  it('calls a guest that stopped while QEMU lives GuestCrashed', () => {
    const c = crashStatus(undefined, { pid: 42, startedAt: 's', failure: { message: 'the guest stopped with status internal-error: KVM internal error. Suberror: 1', startedAt: 's' } }, t0);
    expect(c.condition.reason).toBe('GuestCrashed');
    expect(c.condition.message).toMatch(/internal-error/);
  });
});
