import { isN0Error } from '../errors';
import { ANNOTATIONS } from '../types';
import { SEED_ANNOTATIONS } from '../seed-annotations';
import { checkAnnotationKeys, isQualifiedKey, kubernetesName } from './kubernetes-names';

const caught = (fn: () => unknown): unknown => { try { fn(); } catch (err) { return err; } return undefined; };

describe('annotation keys on the kubernetes store', () => {
  it('takes the canonical keys and refuses the seed\'s, naming the key and where it is translated', () => {
    for (const key of Object.values(ANNOTATIONS)) expect(isQualifiedKey(key)).toBe(true);
    expect(() => checkAnnotationKeys({ metadata: { annotations: Object.fromEntries(Object.values(ANNOTATIONS).map((k) => [k, 'x'])) } })).not.toThrow();
    for (const key of Object.keys(SEED_ANNOTATIONS)) {
      const err = caught(() => checkAnnotationKeys({ metadata: { annotations: { [key]: 'x' } } }));
      expect(isN0Error(err, 'InvalidArgument')).toBe(true);
      expect((err as Error).message).toContain(JSON.stringify(key));
      expect((err as Error).message).toContain('api/seed-annotations.ts');
    }
    expect(isQualifiedKey('Upper/a')).toBe(false);
    expect(isQualifiedKey('plain')).toBe(true);
    expect(isQualifiedKey(`a/${'x'.repeat(64)}`)).toBe(false);
  });
});

describe('object names on the kubernetes store', () => {
  it("refuses '_' with a message that says why", () => {
    const err = caught(() => kubernetesName('debug_ipv6'));
    expect(isN0Error(err, 'InvalidArgument')).toBe(true);
    expect((err as Error).message).toMatch(/the kubernetes store cannot hold names with '_' — Kubernetes object names are DNS subdomains/);
    expect(kubernetesName('debug-ipv6')).toBe('debug-ipv6');
    expect(isN0Error(caught(() => kubernetesName('../x')), 'InvalidArgument')).toBe(true);
  });
});
