import type { AnyResource } from '../types';
import { applySettled } from './resource';

const T = '2026-01-01T00:00:00Z';
const doc = (kind: string, spec: object, status?: object, generation = 2): AnyResource =>
  ({ apiVersion: 'n0stack.io/v1alpha1', kind, metadata: { name: 'x', generation }, spec, status } as unknown as AnyResource);
const ready = (status: string, reason: string) => [{ type: 'Ready', status, reason, message: reason, lastTransitionTime: T }];
const verdict = (written: AnyResource, now: AnyResource | undefined) => {
  const v = applySettled(written)(now);
  return v === undefined ? 'wait' : 'done' in v ? 'done' : `fail: ${v.fail.message}`;
};

describe('applySettled: when apply --wait returns', () => {
  const vmSpec = { limit_cpu_milli_core: 1000, limit_memory_bytes: 268435456 };
  const vm = doc('VirtualMachine', vmSpec);

  it('waits through a VM\'s transient Ready=False and returns once it runs', () => {
    expect(verdict(vm, doc('VirtualMachine', vmSpec, { observedGeneration: 1, state: 'RUNNING', conditions: ready('True', 'RUNNING') }))).toBe('wait');
    expect(verdict(vm, doc('VirtualMachine', vmSpec, { observedGeneration: 2, state: 'PENDING', conditions: ready('False', 'Scheduled') }))).toBe('wait');
    expect(verdict(vm, doc('VirtualMachine', vmSpec, { observedGeneration: 2, state: 'PENDING', conditions: ready('False', 'Converging') }))).toBe('wait');
    expect(verdict(vm, doc('VirtualMachine', vmSpec, { observedGeneration: 2, state: 'RUNNING', conditions: ready('True', 'RUNNING') }))).toBe('done');
    expect(verdict(vm, doc('VirtualMachine', vmSpec, { observedGeneration: 2, state: 'PENDING', conditions: ready('False', 'Unschedulable') }))).toMatch(/^fail: .*Unschedulable/);
  });

  it('a VM applied with run_state SHUTDOWN is done when it is shut down', () => {
    const off = doc('VirtualMachine', { ...vmSpec, run_state: 'SHUTDOWN' });
    expect(verdict(off, doc('VirtualMachine', vmSpec, { observedGeneration: 2, state: 'RUNNING', conditions: ready('False', 'Converging') }))).toBe('wait');
    expect(verdict(off, doc('VirtualMachine', vmSpec, { observedGeneration: 2, state: 'SHUTDOWN', conditions: ready('True', 'SHUTDOWN') }))).toBe('done');
  });

  it('waits while a block storage is made, fails when it failed', () => {
    const bsSpec = { request_bytes: 1, limit_bytes: 1024 };
    const bs = doc('BlockStorage', bsSpec);
    expect(verdict(bs, doc('BlockStorage', bsSpec, { observedGeneration: 2, state: 'PENDING', conditions: ready('False', 'InProgress') }))).toBe('wait');
    expect(verdict(bs, doc('BlockStorage', bsSpec, { observedGeneration: 2, state: 'AVAILABLE', conditions: ready('True', 'AVAILABLE') }))).toBe('done');
    expect(verdict(bs, doc('BlockStorage', bsSpec, { observedGeneration: 2, state: 'FAILED', conditions: ready('False', 'FetchFailed') }))).toMatch(/^fail: .*FetchFailed/);
  });

  it('other kinds: any Ready verdict of the written generation', () => {
    const net = doc('Network', { ipv4_cidr: '10.0.0.0/24' });
    expect(verdict(net, doc('Network', {}, { observedGeneration: 1, conditions: ready('True', 'Available') }))).toBe('wait');
    expect(verdict(net, doc('Network', {}, { observedGeneration: 2, conditions: ready('Unknown', 'x') }))).toBe('wait');
    expect(verdict(net, doc('Network', {}, { observedGeneration: 2, conditions: ready('True', 'Available') }))).toBe('done');
    expect(verdict(net, doc('Network', {}, { observedGeneration: 2, conditions: ready('False', 'InvalidSpec') }))).toBe('done');
  });
});
