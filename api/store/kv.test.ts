import { ConflictError } from '../errors';
import type { Network } from '../types';
import { EventQueue, mergePatch, nextState } from './kv';

const stored: Network = {
  apiVersion: 'n0stack.io/v1alpha1', kind: 'Network',
  metadata: { name: 'n', uid: 'u1', generation: 2, resourceVersion: '7', creationTimestamp: '2024-01-01T00:00:00Z', labels: { a: 'b' }, finalizers: ['f'] },
  spec: { ipv4_cidr: '10.0.0.0/24' },
  status: { state: 'AVAILABLE' },
};

describe('mergePatch (RFC 7386)', () => {
  it('merges objects, removes nulls and replaces arrays and scalars', () => {
    expect(mergePatch({ a: { b: 1, c: 2 }, d: [1, 2], e: 'x' }, { a: { b: null, z: 3 }, d: [3], e: 'y' })).toEqual({ a: { c: 2, z: 3 }, d: [3], e: 'y' });
    expect(mergePatch({ a: 1 }, 'scalar')).toBe('scalar');
    expect(mergePatch('not-an-object', { a: { b: 1 } })).toEqual({ a: { b: 1 } });
  });
});

describe('nextState', () => {
  it('takes spec, labels, annotations and finalizers from a spec write and keeps status and server metadata', () => {
    const next = nextState(stored, { ...stored, metadata: { name: 'n', creationTimestamp: '1999-01-01T00:00:00Z', generation: 99, annotations: { x: 'y' }, finalizers: [] }, spec: { domain: 'd' }, status: { state: 'FAILED' } });
    expect(next.metadata).toEqual({ name: 'n', uid: 'u1', generation: 2, creationTimestamp: '2024-01-01T00:00:00Z', annotations: { x: 'y' } });
    expect(next.spec).toEqual({ domain: 'd' });
    expect(next.status).toEqual({ state: 'AVAILABLE' });
  });

  it('takes only status from a status write', () => {
    const next = nextState(stored, { ...stored, metadata: { name: 'n', labels: {} }, spec: { domain: 'd' }, status: { state: 'FAILED' } }, 'status');
    expect(next.metadata.labels).toEqual({ a: 'b' });
    expect(next.spec).toEqual(stored.spec);
    expect(next.status).toEqual({ state: 'FAILED' });
  });

  it('refuses a write carrying another uid', () => {
    expect(() => nextState(stored, { ...stored, metadata: { ...stored.metadata, uid: 'u2' } })).toThrow(ConflictError);
  });
});

describe('EventQueue', () => {
  it('delivers pushed items in order, then the failure, and nothing pushed after it', async () => {
    const q = new EventQueue<number>();
    q.push(1);
    setTimeout(() => { q.push(2); q.fail(new Error('boom')); q.push(3); }, 5);
    const seen: number[] = [];
    await expect((async () => { for await (const i of q) seen.push(i); })()).rejects.toThrow('boom');
    expect(seen).toEqual([1, 2]);
  });

  it('ends cleanly on end()', async () => {
    const q = new EventQueue<string>();
    setTimeout(() => q.end(), 5);
    const seen: string[] = [];
    for await (const s of q) seen.push(s);
    expect(seen).toEqual([]);
  });
});
