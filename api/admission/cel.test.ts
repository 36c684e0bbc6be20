// The rule table's CEL expressions (for the CRDs' x-kubernetes-validations) say what the modules
// enforce: each is evaluated by a CEL implementation on cases that pass and cases that break it,
// and the module must agree on every case (throwing that rule, or not).
import { evaluate } from '@marcbachmann/cel-js';
import type { AnyResource } from '../types';
import { RULES, type Rule, type RuleId } from './rules';
import { strategyFor } from './admit';

/** Integer fields are CEL ints in Kubernetes (the schema says integer), not doubles. */
const asCel = (v: unknown): unknown => {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(asCel);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asCel(x)]));
  return v;
};

type Case = { rule: RuleId; breaks: boolean; next: object; old?: object };
const doc = (kind: string, spec: object, status?: object) => ({ apiVersion: 'n0stack.io/v1alpha1', kind, metadata: { name: 'x' }, spec, ...(status ? { status } : {}) });
const bs = (spec: object) => doc('BlockStorage', { request_bytes: 1, limit_bytes: 1024, ...spec });
const vm = (spec: object) => doc('VirtualMachine', { limit_cpu_milli_core: 1000, limit_memory_bytes: 1024, ...spec });
const net = (spec: object, status?: object) => doc('Network', spec, status);
const addr = (spec: object) => doc('NetworkAddress', { network_name: 'n', family: 'ipv4', address: '10.0.0.1', holder_key: 'vm1.0', ...spec });

const CASES: Case[] = [
  { rule: 'network.cidr-required', breaks: true, next: net({}) },
  { rule: 'network.cidr-required', breaks: false, next: net({ ipv6_cidr: 'fd00::/64' }) },
  // The cidr rules need the Network's NetworkAddress objects: no CEL (api/admission/network.test.ts).
  { rule: 'networkaddress.immutable', breaks: true, old: addr({}), next: addr({ holder_key: 'vm2.0' }) },
  { rule: 'networkaddress.immutable', breaks: false, old: addr({}), next: addr({}) },
  { rule: 'blockstorage.limit-positive', breaks: true, next: bs({ request_bytes: 0, limit_bytes: 0 }) },
  { rule: 'blockstorage.limit-positive', breaks: false, next: bs({ request_bytes: 0, limit_bytes: 1 }) },
  { rule: 'blockstorage.request-within-limit', breaks: true, next: bs({ request_bytes: 2048 }) },
  { rule: 'blockstorage.request-within-limit', breaks: false, next: bs({ request_bytes: 1024 }) },
  { rule: 'blockstorage.one-source', breaks: true, next: bs({ source_url: 'http://h/x', backing_block_storage: 'b' }) },
  { rule: 'blockstorage.one-source', breaks: false, next: bs({ source_block_storage: 'b' }) },
  { rule: 'blockstorage.source-url-http', breaks: true, next: bs({ source_url: 'file:///etc/passwd' }) },
  { rule: 'blockstorage.source-url-http', breaks: false, next: bs({ source_url: 'https://h/x' }) },
  { rule: 'blockstorage.limit-only-grows', breaks: true, old: bs({ limit_bytes: 2048 }), next: bs({ limit_bytes: 1024 }) },
  { rule: 'blockstorage.limit-only-grows', breaks: false, old: bs({ limit_bytes: 1024 }), next: bs({ limit_bytes: 2048 }) },
  { rule: 'blockstorage.request-only-grows', breaks: true, old: bs({ request_bytes: 2 }), next: bs({ request_bytes: 1 }) },
  { rule: 'blockstorage.request-only-grows', breaks: false, old: bs({ request_bytes: 1 }), next: bs({ request_bytes: 2 }) },
  { rule: 'blockstorage.source-immutable', breaks: true, old: bs({ backing_block_storage: 'a' }), next: bs({ backing_block_storage: 'b' }) },
  { rule: 'blockstorage.source-immutable', breaks: true, old: bs({ backing_block_storage: 'a' }), next: bs({}) },
  { rule: 'blockstorage.source-immutable', breaks: true, old: bs({}), next: bs({ source_sha256: 'abc' }) },
  { rule: 'blockstorage.source-immutable', breaks: false, old: bs({ source_url: 'http://h/x' }), next: bs({ source_url: 'http://h/x', node_name: 'n1' }) },
  { rule: 'blockstorage.claim-protected', breaks: true, old: bs({ protected: true }), next: bs({ protected: true, claimed_by: 'u' }) },
  { rule: 'blockstorage.claim-protected', breaks: false, old: bs({}), next: bs({ claimed_by: 'u' }) },
  { rule: 'virtualmachine.whole-cores', breaks: true, next: vm({ limit_cpu_milli_core: 1500 }) },
  { rule: 'virtualmachine.whole-cores', breaks: false, next: vm({ limit_cpu_milli_core: 2000 }) },
  { rule: 'virtualmachine.request-cpu-within-limit', breaks: true, next: vm({ request_cpu_milli_core: 2000 }) },
  { rule: 'virtualmachine.request-cpu-within-limit', breaks: false, next: vm({ request_cpu_milli_core: 1000 }) },
  { rule: 'virtualmachine.memory-equal', breaks: true, next: vm({ request_memory_bytes: 1 }) },
  { rule: 'virtualmachine.memory-equal', breaks: false, next: vm({ request_memory_bytes: 1024 }) },
  { rule: 'virtualmachine.nics-immutable', breaks: true, old: vm({ nics: [{ network_name: 'a' }] }), next: vm({ nics: [{ network_name: 'a', ipv4_address: '10.0.0.9' }] }) },
  { rule: 'virtualmachine.nics-immutable', breaks: true, old: vm({ nics: [{ network_name: 'a' }] }), next: vm({}) },
  { rule: 'virtualmachine.nics-immutable', breaks: false, old: vm({ nics: [{ network_name: 'a' }] }), next: vm({ nics: [{ network_name: 'a' }], run_state: 'SHUTDOWN' }) },
  { rule: 'virtualmachine.block-storage-names-immutable', breaks: true, old: vm({ block_storage_names: ['d1'] }), next: vm({ block_storage_names: ['d1', 'd2'] }) },
  { rule: 'virtualmachine.block-storage-names-immutable', breaks: false, old: vm({ block_storage_names: ['d1'] }), next: vm({ block_storage_names: ['d1'], limit_cpu_milli_core: 2000 }) },
  { rule: 'image.tag-registered', breaks: true, next: doc('Image', { tags: { latest: 'bs1' } }) },
  { rule: 'image.tag-registered', breaks: false, next: doc('Image', { tags: { latest: 'bs1' }, registered_block_storages: [{ block_storage_name: 'bs1' }] }) },
];

function celBreaks(rule: Rule, c: Case): boolean {
  const pick = (d: object | undefined) => (d && rule.celScope === 'spec' ? (d as { spec: object }).spec : d);
  return evaluate(rule.cel!, asCel({ self: pick(c.next), oldSelf: pick(c.old) }) as Record<string, unknown>) !== true;
}

function moduleBreaks(c: Case): RuleId | undefined {
  const next = structuredClone(c.next) as AnyResource;
  const strategy = strategyFor(next.kind) as unknown as { validateCreate(o: AnyResource): void; validateUpdate(o: AnyResource, n: AnyResource): void };
  try {
    if (c.old) strategy.validateUpdate(structuredClone(c.old) as AnyResource, next); else strategy.validateCreate(next);
  } catch (err) {
    return (err as { rule?: RuleId }).rule;
  }
  return undefined;
}

describe('the rule table\'s CEL expressions', () => {
  const celRules = RULES.filter((r: Rule) => r.cel) as Rule[];

  it('every CEL rule has a case that breaks it and one that keeps it', () => {
    for (const r of celRules) {
      expect([r.id, CASES.some((c) => c.rule === r.id && c.breaks)]).toEqual([r.id, true]);
      expect([r.id, CASES.some((c) => c.rule === r.id && !c.breaks)]).toEqual([r.id, true]);
    }
  });

  it.each(CASES.map((c, i) => [`${c.rule} #${i} ${c.breaks ? 'breaks' : 'keeps'}`, c] as const))('%s: CEL and the module agree', (_name, c) => {
    const rule = RULES.find((r) => r.id === c.rule) as Rule;
    expect(celBreaks(rule, c)).toBe(c.breaks);
    if (c.breaks) expect(moduleBreaks(c)).toBe(c.rule);
    else expect(moduleBreaks(c)).not.toBe(c.rule);
  });
});
