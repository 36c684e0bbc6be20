import { validateDocument } from '../api/schema';
import { ANNOTATIONS } from '../api/types';
import { mergeStatus, nodeDocument, readyStatus } from './registration';

const facts = {
  nodeName: 'node1',
  address: '10.0.0.1',
  agentEndpoint: '10.0.0.1:20181',
  accelerator: 'tcg' as const,
  agentVersion: '0.1.0',
  capacity: { cpuMilliCores: 2000, memoryBytes: 4 << 30, storageBytes: 100 << 30 },
};

test('the registered Node carries the measured facts and passes the CRD schema', () => {
  const now = new Date('2024-01-02T03:04:05.678Z');
  const doc = nodeDocument(facts, now);
  expect(doc.spec).toEqual({ address: '10.0.0.1', agent_endpoint: '10.0.0.1:20181', cpu_milli_cores: 2000, memory_bytes: 4 << 30, storage_bytes: 100 << 30 });
  expect(doc.metadata.annotations).toEqual({ [ANNOTATIONS.agentVersion]: '0.1.0' });
  expect(doc.status).toMatchObject({ state: 'Ready', last_heartbeat_time: '2024-01-02T03:04:05Z', accelerator: 'tcg', agent_version: '0.1.0' });
  expect(doc.status?.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'True' });
  expect(() => validateDocument(doc)).not.toThrow();
});

test('mergeStatus keeps other writers\' fields and the transition time of an unchanged condition', () => {
  const t0 = new Date('2024-01-01T00:00:00Z');
  const t1 = new Date('2024-01-01T00:00:05Z');
  const stored = mergeStatus({ reserved_computes: { vm1: { request_cpu_milli_core: 500 } }, state: 'NotReady' }, readyStatus(facts, t0), t0);
  expect(stored.reserved_computes).toEqual({ vm1: { request_cpu_milli_core: 500 } });
  expect(stored.state).toBe('Ready');
  const next = mergeStatus(stored, readyStatus(facts, t1), t1);
  expect(next.last_heartbeat_time).toBe('2024-01-01T00:00:05Z');
  expect(next.conditions).toHaveLength(1);
  expect(next.conditions![0].lastTransitionTime).toBe('2024-01-01T00:00:00Z');
  const flipped = mergeStatus(next, { conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: '' }] }, t1);
  expect(flipped.conditions![0]).toMatchObject({ status: 'False', lastTransitionTime: '2024-01-01T00:00:05Z' });
});
