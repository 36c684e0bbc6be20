import { isN0Error } from '../errors';
import { ANNOTATIONS } from '../types';
import {
  decodeAnnotationKey, decodeDocument, encodeAnnotationKey, encodeDocument, encodePatchOps, isQualifiedKey, kubernetesName,
} from './kubernetes-names';

const caught = (fn: () => unknown): unknown => { try { fn(); } catch (err) { return err; } return undefined; };

describe('annotation keys on the kubernetes store', () => {
  it('transcodes the seed keys into qualified names a real API server accepts, and back', () => {
    expect(encodeAnnotationKey(ANNOTATIONS.vmRequestNodeName)).toBe('n0core.path.n0stack.io/provisioning.virtual_machine.request_node_name');
    expect(encodeAnnotationKey(ANNOTATIONS.agentVersion)).toBe('github.com.path.n0stack.io/n0stack.n0stack.n0core.agent_version');
    for (const key of Object.values(ANNOTATIONS)) {
      const stored = encodeAnnotationKey(key);
      expect(isQualifiedKey(stored)).toBe(true);
      expect(decodeAnnotationKey(stored)).toBe(key);
    }
  });

  it('keeps valid keys as they are', () => {
    for (const key of ['app', 'n0stack.io/owner', 'example.com/a_b.c-d', 'kubectl.kubernetes.io/last-applied-configuration', 'path.n0stack.io/x']) {
      expect(encodeAnnotationKey(key)).toBe(key);
      expect(decodeAnnotationKey(key)).toBe(key);
    }
  });

  it('is a bijection, also for keys that already look transcoded and keys with - and .', () => {
    const keys = [
      'n0core.path.n0stack.io/provisioning.virtual_machine.request_node_name', // looks transcoded: must be escaped
      'a.path.n0stack.io/b',
      'a/b-c/d.e',
      'a/b--c/x-d', // '-d' in the original must not decode to '.'
      'a/b.-d/c',
      'x.y/p/q/r',
      'n0core/provisioning/virtual_machine/request_node_name',
      'n0core/provisioning.virtual_machine.request_node_name',
    ];
    const stored = keys.map((k) => {
      try { return encodeAnnotationKey(k); } catch { return undefined; }
    });
    // Every key that could be stored decodes to itself, and no two keys share a stored form.
    keys.forEach((k, i) => { if (stored[i] !== undefined) expect(decodeAnnotationKey(stored[i]!)).toBe(k); });
    const defined = stored.filter((s): s is string => s !== undefined);
    expect(new Set(defined).size).toBe(defined.length);
    expect(encodeAnnotationKey('n0core.path.n0stack.io/provisioning.virtual_machine.request_node_name'))
      .toBe('n0core.path.n0stack.io.path.n0stack.io/provisioning-dvirtual_machine-drequest_node_name');
    expect(encodeAnnotationKey('a/b-c/d.e')).toBe('a.path.n0stack.io/b--c.d-de');
    expect(decodeAnnotationKey('a.path.n0stack.io/b--c.d-de')).toBe('a/b-c/d.e');
  });

  it('round-trips many generated keys, injectively', () => {
    const alphabet = ['a', 'Z', '0', '_', '-', '.', '/'];
    const bad: string[] = [];
    const seen = new Map<string, string>();
    let refused = 0;
    for (let n = 0; n < alphabet.length ** 5; n++) {
      let rest = '';
      for (let x = n, i = 0; i < 5; x = Math.floor(x / alphabet.length), i++) rest += alphabet[x % alphabet.length];
      const key = `n0core/${rest}`;
      let stored: string;
      try { stored = encodeAnnotationKey(key); } catch { refused++; continue; }
      if (!isQualifiedKey(stored) || decodeAnnotationKey(stored) !== key || (seen.has(stored) && seen.get(stored) !== key)) bad.push(`${key} -> ${stored}`);
      seen.set(stored, key);
    }
    expect(bad).toEqual([]);
    expect(seen.size).toBeGreaterThan(4000); // of 16,807
    expect(refused).toBeGreaterThan(0); // names that start or end with '_', '-', '.' or '/' cannot be stored
  });

  it('refuses keys no reversible mapping fits, naming the key', () => {
    for (const key of ['Upper/a/b', 'under_score/a/b', '/a/b', 'a//', `a/${'x/'.repeat(40)}y`, 'no:colon']) {
      const err = caught(() => encodeAnnotationKey(key));
      expect(isN0Error(err, 'InvalidArgument')).toBe(true);
      expect((err as Error).message).toContain(JSON.stringify(key));
    }
  });

  it('leaves keys it did not write (kubectl) as they are on the way out', () => {
    expect(decodeAnnotationKey('a.path.n0stack.io/bad-x')).toBe('a.path.n0stack.io/bad-x');
  });

  it('rewrites documents, merge patches and JSON Patch ops', () => {
    const doc = encodeDocument({ metadata: { name: 'a', annotations: { [ANNOTATIONS.vlanId]: '100', plain: 'x' } } });
    expect(doc.metadata.annotations).toEqual({ 'n0core.path.n0stack.io/provisioning.virtual_machine.vlan_id': '100', plain: 'x' });
    expect(decodeDocument(doc).metadata.annotations).toEqual({ [ANNOTATIONS.vlanId]: '100', plain: 'x' });
    expect(encodeDocument({ metadata: { annotations: { [ANNOTATIONS.vlanId]: null } } }).metadata.annotations).toEqual({ 'n0core.path.n0stack.io/provisioning.virtual_machine.vlan_id': null });
    const ops = encodePatchOps([
      { op: 'add', path: '/metadata/annotations/n0core~1provisioning~1virtual_machine~1vlan_id', value: '7' },
      { op: 'remove', path: '/metadata/annotations/plain' },
      { op: 'replace', path: '/metadata/annotations', value: { [ANNOTATIONS.vmRequestNodeName]: 'n1' } },
      { op: 'test', path: '/spec/x', value: 1 },
    ]);
    expect(ops).toEqual([
      { op: 'add', path: '/metadata/annotations/n0core.path.n0stack.io~1provisioning.virtual_machine.vlan_id', value: '7' },
      { op: 'remove', path: '/metadata/annotations/plain' },
      { op: 'replace', path: '/metadata/annotations', value: { 'n0core.path.n0stack.io/provisioning.virtual_machine.request_node_name': 'n1' } },
      { op: 'test', path: '/spec/x', value: 1 },
    ]);
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
