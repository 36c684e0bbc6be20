import type { BlockStorage, Network, Node, VirtualMachine } from '../types';
import { blockStorageWireState, networkWireState, nodeWireState, STATE_MAPPINGS, virtualMachineWireState } from './wire-states';

const meta = (deleting = false) => ({ name: 'x', ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) });
const node = (state: NonNullable<Node['status']>['state'] | undefined, opts: { cordoned?: boolean; deleting?: boolean } = {}): Node => ({
  apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: meta(opts.deleting), spec: { unschedulable: opts.cordoned }, status: state ? { state } : undefined,
});

describe('our states on the seed\'s enums', () => {
  it('Node: only a Ready, schedulable node that is not being deleted is Ready', () => {
    expect(nodeWireState(node('Ready'))).toEqual({ state: 'Ready', exact_state: 'Ready' });
    expect(nodeWireState(node('NotReady'))).toEqual({ state: 'NotReady', exact_state: 'NotReady' });
    expect(nodeWireState(node('Unknown'))).toEqual({ state: 'NotReady', exact_state: 'Unknown' });
    expect(nodeWireState(node(undefined))).toEqual({ state: 'NotReady', exact_state: 'Unknown' });
    expect(nodeWireState(node('Ready', { cordoned: true }))).toEqual({ state: 'NotReady', exact_state: 'Ready,SchedulingDisabled' });
    expect(nodeWireState(node('NotReady', { cordoned: true }))).toEqual({ state: 'NotReady', exact_state: 'NotReady' });
    expect(nodeWireState(node('Ready', { deleting: true }))).toEqual({ state: 'NotReady', exact_state: 'Deleting' });
  });

  it('Network: FAILED keeps its value; PENDING and deleting are UNKNOWN', () => {
    const net = (state?: NonNullable<Network['status']>['state'], deleting = false): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: meta(deleting), spec: {}, status: state ? { state } : undefined });
    expect(networkWireState(net('AVAILABLE'))).toEqual({ state: 'AVAILABLE', exact_state: 'AVAILABLE' });
    expect(networkWireState(net('FAILED'))).toEqual({ state: 'FAILED', exact_state: 'FAILED' });
    expect(networkWireState(net('PENDING'))).toEqual({ state: 'UNKNOWN', exact_state: 'PENDING' });
    expect(networkWireState(net())).toEqual({ state: 'UNKNOWN', exact_state: 'PENDING' });
    expect(networkWireState(net('AVAILABLE', true))).toEqual({ state: 'UNKNOWN', exact_state: 'DELETING' });
  });

  it('BlockStorage: the enum has no FAILED; failed and deleting disks are UNKNOWN', () => {
    const bs = (state?: NonNullable<BlockStorage['status']>['state'], deleting = false): BlockStorage => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'BlockStorage', metadata: meta(deleting), spec: { request_bytes: 1, limit_bytes: 1 }, status: state ? { state } : undefined });
    for (const s of ['PENDING', 'AVAILABLE', 'IN_USE', 'PROTECTED'] as const) expect(blockStorageWireState(bs(s))).toEqual({ state: s, exact_state: s });
    expect(blockStorageWireState(bs('FAILED'))).toEqual({ state: 'UNKNOWN', exact_state: 'FAILED' });
    expect(blockStorageWireState(bs())).toEqual({ state: 'PENDING', exact_state: 'PENDING' });
    expect(blockStorageWireState(bs('IN_USE', true))).toEqual({ state: 'UNKNOWN', exact_state: 'DELETING' });
  });

  it('VirtualMachine: FAILED and a crash loop are UNKNOWN, the exact state says which', () => {
    const vm = (state?: NonNullable<VirtualMachine['status']>['state'], reason?: string, deleting = false): VirtualMachine => ({
      apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: meta(deleting), spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 1 << 20 },
      status: state ? { state, conditions: reason ? [{ type: 'Ready', status: 'False', reason, lastTransitionTime: '2026-01-01T00:00:00Z' }] : [] } : undefined,
    });
    for (const s of ['PENDING', 'RUNNING', 'SHUTDOWN', 'PAUSED', 'UNKNOWN'] as const) expect(virtualMachineWireState(vm(s))).toEqual({ state: s, exact_state: s });
    expect(virtualMachineWireState(vm('FAILED', 'StartFailed'))).toEqual({ state: 'UNKNOWN', exact_state: 'FAILED' });
    expect(virtualMachineWireState(vm('FAILED', 'CrashLoopBackOff'))).toEqual({ state: 'UNKNOWN', exact_state: 'CrashLoopBackOff' });
    expect(virtualMachineWireState(vm('RUNNING', undefined, true))).toEqual({ state: 'UNKNOWN', exact_state: 'DELETING' });
  });

  it('the table covers every state our CRDs allow', () => {
    expect(Object.keys(STATE_MAPPINGS.Node)).toEqual(expect.arrayContaining(['Ready', 'NotReady', 'Unknown']));
    expect(Object.keys(STATE_MAPPINGS.Network)).toEqual(expect.arrayContaining(['PENDING', 'AVAILABLE', 'FAILED', 'UNKNOWN']));
    expect(Object.keys(STATE_MAPPINGS.BlockStorage)).toEqual(expect.arrayContaining(['PENDING', 'AVAILABLE', 'IN_USE', 'PROTECTED', 'FAILED', 'UNKNOWN']));
    expect(Object.keys(STATE_MAPPINGS.VirtualMachine)).toEqual(expect.arrayContaining(['PENDING', 'RUNNING', 'SHUTDOWN', 'PAUSED', 'FAILED', 'UNKNOWN']));
  });
});
