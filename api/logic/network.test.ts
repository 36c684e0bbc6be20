import { isN0Error } from '../errors';
import type { Network } from '../types';
import { hashSegmentId, segmentOf, VLAN_ANNOTATION_FIELD } from './network';

const net = (name: string, spec: Network['spec'] = {}, annotations?: Record<string, string>): Network => ({
  apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name, annotations }, spec,
});

function failure(fn: () => unknown): { code: string; message: string; field?: string } {
  try { fn(); } catch (err) { if (isN0Error(err)) return { code: err.code, message: err.message, field: err.field }; throw err; }
  throw new Error('expected a failure');
}

describe('network segment', () => {
  it('prefers spec.vxlan_id, then the seed annotation, then a hash of the name', () => {
    const ann = { 'n0core/provisioning/virtual_machine/vlan_id': '100' };
    expect(segmentOf(net('a', { vxlan_id: 5000 }, ann))).toEqual({ id: 5000, source: 'spec' });
    expect(segmentOf(net('a', {}, ann))).toEqual({ id: 100, source: 'annotation' });
    const hashed = segmentOf(net('debug_ipv6'));
    expect(hashed.source).toBe('hash');
    expect(hashed.id).toBe(hashSegmentId('debug_ipv6'));
    expect(segmentOf(net('debug_ipv6')).id).toBe(hashed.id);
  });

  it('hashes names into 1..16777215, spread out', () => {
    const all = Array.from({ length: 2000 }, (_, i) => hashSegmentId(`net-${i}`));
    expect(Math.min(...all)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...all)).toBeLessThanOrEqual(16_777_215);
    expect(all.every(Number.isInteger)).toBe(true);
    expect(new Set(all).size).toBeGreaterThan(1990);
  });

  it('validates the annotation and vxlan_id naming the field', () => {
    for (const bad of ['abc', '0', '4095', '-1', '1.5', '', ' 100', '00100']) {
      const f = failure(() => segmentOf(net('a', {}, { 'n0core/provisioning/virtual_machine/vlan_id': bad })));
      expect(f.code).toBe('InvalidArgument');
      expect(f.field).toBe(VLAN_ANNOTATION_FIELD);
      expect(f.message).toContain('provisioning.n0stack.io/vlan-id');
    }
    expect(segmentOf(net('a', {}, { 'n0core/provisioning/virtual_machine/vlan_id': '4094' })).id).toBe(4094);
    expect(failure(() => segmentOf(net('a', { vxlan_id: 16_777_216 })))).toMatchObject({ code: 'InvalidArgument', field: 'vxlan_id' });
    expect(failure(() => segmentOf(net('a', { vxlan_id: 0 }))).field).toBe('vxlan_id');
  });
});
