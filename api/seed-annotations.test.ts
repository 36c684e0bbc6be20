// Every annotation key, finalizer and name n0stack writes, and every name and key of the example
// manifests, held to the rules a Kubernetes API server applies (k8s.io/apimachinery
// pkg/util/validation: IsQualifiedName, IsValidLabelValue, IsDNS1123Subdomain; and
// apimachinery's ValidateFinalizerName), with the regexes written here as apimachinery spells
// them, not taken from our own code. And the translation of the seed's keys at the edges.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { FINALIZERS } from './admission/finalizers';
import { annotationsFromSeed, annotationsToSeed, documentFromSeed, SEED_ANNOTATIONS } from './seed-annotations';
import { ANNOTATIONS } from './types';

// k8s.io/apimachinery/pkg/util/validation/validation.go
const qnameCharFmt = '[A-Za-z0-9]';
const qnameExtCharFmt = '[-A-Za-z0-9_.]';
const qualifiedNameFmt = `(${qnameCharFmt}${qnameExtCharFmt}*)?${qnameCharFmt}`;
const qualifiedNameRegexp = new RegExp(`^${qualifiedNameFmt}$`);
const qualifiedNameMaxLength = 63;
const labelValueRegexp = new RegExp(`^(${qualifiedNameFmt})?$`);
const LabelValueMaxLength = 63;
const dns1123LabelFmt = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const dns1123SubdomainRegexp = new RegExp(`^${dns1123LabelFmt}(\\.${dns1123LabelFmt})*$`);
const DNS1123SubdomainMaxLength = 253;
// k8s.io/apimachinery/pkg/api/validation/objectmeta.go: TotalAnnotationSizeLimitB
const TotalAnnotationSizeLimitB = 256 * 1024;

function isDNS1123Subdomain(value: string): string[] {
  const errs: string[] = [];
  if (value.length > DNS1123SubdomainMaxLength) errs.push(`must be no more than ${DNS1123SubdomainMaxLength} characters`);
  if (!dns1123SubdomainRegexp.test(value)) errs.push('a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\'');
  return errs;
}

function isQualifiedName(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split('/');
  let name: string;
  if (parts.length === 1) name = parts[0];
  else if (parts.length === 2) {
    const [prefix] = parts;
    name = parts[1];
    if (prefix.length === 0) errs.push('prefix part must be non-empty');
    else errs.push(...isDNS1123Subdomain(prefix).map((m) => `prefix part ${m}`));
  } else {
    return [`a qualified name must consist of alphanumeric characters, '-', '_' or '.' ... with an optional DNS subdomain prefix and '/'`];
  }
  if (name.length === 0) errs.push('name part must be non-empty');
  else if (name.length > qualifiedNameMaxLength) errs.push(`name part must be no more than ${qualifiedNameMaxLength} characters`);
  if (!qualifiedNameRegexp.test(name)) errs.push('name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\'');
  return errs;
}

function isValidLabelValue(value: string): string[] {
  const errs: string[] = [];
  if (value.length > LabelValueMaxLength) errs.push(`must be no more than ${LabelValueMaxLength} characters`);
  if (!labelValueRegexp.test(value)) errs.push('a valid label must be an empty string or consist of alphanumeric characters, \'-\', \'_\' or \'.\'');
  return errs;
}

// apimachinery ValidateFinalizerName: a qualified name, and one without '/' must be a standard one.
function finalizerProblems(value: string): string[] {
  const errs = isQualifiedName(value);
  if (!value.includes('/') && !['kubernetes', 'orphan', 'foregroundDeletion'].includes(value)) errs.push('name is neither a standard finalizer name nor is it fully qualified');
  return errs;
}

describe('the API server\'s rules, as written here, are the real ones', () => {
  it.each([
    ['provisioning.n0stack.io/request-node-name', []],
    ['n0core/provisioning/virtual_machine/vlan_id', ['a qualified name must consist']],
    ['Upper.example/x', ['prefix part']],
    [`a/${'x'.repeat(64)}`, ['name part must be no more than 63']],
    ['/x', ['prefix part must be non-empty']],
  ])('%s', (key, expected) => {
    const problems = isQualifiedName(key);
    expect(problems.length).toBe(expected.length ? Math.max(1, problems.length) : 0);
    for (const e of expected) expect(problems.join('; ')).toContain(e);
  });
});

describe('every annotation key and finalizer n0stack writes', () => {
  const keys = [...Object.values(ANNOTATIONS), ...Object.values(SEED_ANNOTATIONS).map((s) => s.canonical)];
  it.each([...new Set(keys)])('annotation key %s is a qualified name', (key) => {
    expect({ key, problems: isQualifiedName(key) }).toEqual({ key, problems: [] });
  });
  it.each(Object.values(FINALIZERS))('finalizer %s is a valid finalizer name', (f) => {
    expect({ f, problems: finalizerProblems(f) }).toEqual({ f, problems: [] });
  });
  it('the seed\'s keys are the ones a real server refuses: each has a canonical key', () => {
    for (const seedKey of Object.keys(SEED_ANNOTATIONS)) expect(isQualifiedName(seedKey)).not.toEqual([]);
  });
});

describe('e2e/manifests: every name and key passes the API server\'s validation', () => {
  const dir = path.join(__dirname, '..', 'e2e', 'manifests');
  const docs = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).flatMap((f) =>
    YAML.parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS()).filter(Boolean).map((doc) => ({ file: f, doc })));
  it('has documents', () => expect(docs.length).toBeGreaterThanOrEqual(3));
  it.each(docs.map(({ file, doc }) => [`${file} ${doc.kind}/${doc.metadata?.name}`, doc]))('%s', (_what, doc) => {
    const problems: string[] = [];
    const meta = doc.metadata ?? {};
    // Custom resources: the name is a DNS-1123 subdomain; so is every object it names.
    problems.push(...isDNS1123Subdomain(meta.name).map((m) => `metadata.name: ${m}`));
    for (const [key, value] of Object.entries((meta.annotations ?? {}) as Record<string, string>)) {
      problems.push(...isQualifiedName(key).map((m) => `metadata.annotations ${key}: ${m}`));
      expect(typeof value).toBe('string');
    }
    expect(JSON.stringify(meta.annotations ?? {}).length).toBeLessThan(TotalAnnotationSizeLimitB);
    for (const [key, value] of Object.entries((meta.labels ?? {}) as Record<string, string>)) {
      problems.push(...isQualifiedName(key).map((m) => `metadata.labels key ${key}: ${m}`));
      problems.push(...isValidLabelValue(String(value)).map((m) => `metadata.labels ${key} value: ${m}`));
    }
    for (const f of meta.finalizers ?? []) problems.push(...finalizerProblems(f).map((m) => `metadata.finalizers ${f}: ${m}`));
    const spec = doc.spec ?? {};
    const named = [spec.node_name, spec.backing_block_storage, spec.source_block_storage, ...(spec.block_storage_names ?? []), ...(spec.nics ?? []).map((n: { network_name: string }) => n.network_name)].filter(Boolean);
    for (const n of named) problems.push(...isDNS1123Subdomain(n).map((m) => `names ${n}: ${m}`));
    expect(problems).toEqual([]);
  });
});

describe('the seed\'s keys are translated at the edges', () => {
  it('to the canonical keys on the way in, whatever else is there', () => {
    expect(annotationsFromSeed({ 'n0core/provisioning/virtual_machine/vlan_id': '100', other: 'x' })).toEqual({ [ANNOTATIONS.vlanId]: '100', other: 'x' });
    expect(annotationsFromSeed({ 'n0core/provisioning/block_storage/request_node_name': 'h1' })).toEqual({ [ANNOTATIONS.blockStorageRequestNodeName]: 'h1' });
    expect(annotationsFromSeed({ 'github.com/n0stack/n0stack/n0core/agent_version': '0.1' })).toEqual({ [ANNOTATIONS.agentVersion]: '0.1' });
    expect(annotationsFromSeed(undefined)).toBeUndefined();
    // Both spellings with the same value are one; with different values, refused, naming both.
    expect(annotationsFromSeed({ 'n0core/provisioning/virtual_machine/vlan_id': '100', [ANNOTATIONS.vlanId]: '100' })).toEqual({ [ANNOTATIONS.vlanId]: '100' });
    expect(() => annotationsFromSeed({ 'n0core/provisioning/virtual_machine/vlan_id': '100', [ANNOTATIONS.vlanId]: '200' })).toThrow(/n0core\/provisioning\/virtual_machine\/vlan_id="100" and provisioning.n0stack.io\/vlan-id="200"/);
  });
  it('back to the seed\'s key of the kind on the way out (the seed\'s messages)', () => {
    expect(annotationsToSeed('VirtualMachine', { [ANNOTATIONS.vmRequestNodeName]: 'h1', x: 'y' })).toEqual({ 'n0core/provisioning/virtual_machine/request_node_name': 'h1', x: 'y' });
    expect(annotationsToSeed('BlockStorage', { [ANNOTATIONS.blockStorageRequestNodeName]: 'h1' })).toEqual({ 'n0core/provisioning/block_storage/request_node_name': 'h1' });
    expect(annotationsToSeed('Network', { [ANNOTATIONS.vlanId]: '100' })).toEqual({ 'n0core/provisioning/virtual_machine/vlan_id': '100' });
    expect(annotationsToSeed('Node', { [ANNOTATIONS.agentVersion]: '0.1' })).toEqual({ 'github.com/n0stack/n0stack/n0core/agent_version': '0.1' });
    expect(annotationsToSeed('Image', { [ANNOTATIONS.vlanId]: '100' })).toEqual({ [ANNOTATIONS.vlanId]: '100' });
  });
  it('in manifests (n0ctl apply) that still use them', () => {
    const doc = documentFromSeed({ kind: 'Network', metadata: { name: 'n', annotations: { 'n0core/provisioning/virtual_machine/vlan_id': '100' } } });
    expect(doc.metadata.annotations).toEqual({ [ANNOTATIONS.vlanId]: '100' });
  });
  it('every annotation key in the seed\'s own files (e2e/seed, unchanged) is one it translates or a qualified name', () => {
    const dir = path.join(__dirname, '..', 'e2e', 'seed');
    const keys = new Set<string>();
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.yaml'))) {
      // Read as lines: one of the seed's files is not even valid YAML (its `image_name: cloudimage-ubuntu:` typo).
      let within: number | undefined;
      for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        const indent = line.length - line.trimStart().length;
        if (/^\s*annotations:\s*$/.test(line)) { within = indent; continue; }
        if (within === undefined || !line.trim()) continue;
        if (indent <= within) { within = undefined; continue; }
        const m = /^\s*([^\s:]+):/.exec(line);
        if (m) keys.add(m[1]);
      }
    }
    expect(keys.size).toBeGreaterThan(0);
    for (const k of keys) expect({ k, ok: !!SEED_ANNOTATIONS[k] || isQualifiedName(k).length === 0 }).toEqual({ k, ok: true });
  });
});
