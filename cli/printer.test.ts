import { loadCrds } from '../api/schema';
import type { Resource } from '../api/types';
import { resolveKind } from './kinds';
import { describeDocument, evalJsonPath, formatAge, formatPatch, parseOutputFormat, printDocuments, printTable } from './printer';

const NOW = Date.parse('2024-05-01T12:00:00Z');
const vm = (name: string, ips: string[], state = 'RUNNING'): Resource => ({
  apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine',
  metadata: { name, creationTimestamp: '2024-05-01T11:55:00Z' },
  spec: { limit_cpu_milli_core: 2000, limit_memory_bytes: 536870912 },
  status: { state, node_name: 'vm-host1', nics: ips.map((ip) => ({ network_name: 'n', ipv4_address: ip })) },
});

describe('JSONPath subset of the CRD printer columns', () => {
  const doc = { spec: { a: [{ b: 1 }, { b: 2 }, {}], m: { 'x.y': 'z' } }, metadata: { name: 'n' } };
  it('evaluates fields, [*], indexes, braces and quoted keys', () => {
    expect(evalJsonPath(doc, '.metadata.name')).toEqual(['n']);
    expect(evalJsonPath(doc, '.spec.a[*].b')).toEqual([1, 2]);
    expect(evalJsonPath(doc, '{.spec.a[1].b}')).toEqual([2]);
    expect(evalJsonPath(doc, ".spec.m['x.y']")).toEqual(['z']);
    expect(evalJsonPath(doc, '.status.state')).toEqual([]);
    expect(() => evalJsonPath(doc, '.spec.a[?(@.b)]')).toThrow('unsupported JSONPath');
  });
  it('evaluates the equality filter of condition columns', () => {
    const vm = { status: { conditions: [{ type: 'Ready', reason: 'CrashLoopBackOff' }, { type: 'Other', reason: 'X' }] } };
    expect(evalJsonPath(vm, '.status.conditions[?(@.type=="Ready")].reason')).toEqual(['CrashLoopBackOff']);
    expect(evalJsonPath(vm, ".status.conditions[?(@.type=='Missing')].reason")).toEqual([]);
  });
  it('every jsonPath in crds/ is supported', () => {
    for (const crd of loadCrds().values()) for (const c of crd.printerColumns) expect(() => evalJsonPath({}, c.jsonPath)).not.toThrow();
  });
});

describe('tables', () => {
  it('prints the VirtualMachine columns; -o wide adds priority columns such as IPv4 with [*]', () => {
    const crd = loadCrds().get('VirtualMachine')!;
    const looping = vm('db', [], 'FAILED');
    (looping.status as { conditions?: unknown[] }).conditions = [{ type: 'Ready', status: 'False', reason: 'CrashLoopBackOff', message: 'x', lastTransitionTime: '2026-12-01T00:00:00Z' }];
    const docs = [vm('web', ['192.168.0.1', '10.0.0.5']), looping];
    expect(printTable(docs, crd, { now: NOW }).split('\n')).toEqual([
      'NAME   STATE     REASON             NODE       CPU    MEMORY   AGE',
      'web    RUNNING   <none>             vm-host1   2000   512MiB   5m',
      'db     FAILED    CrashLoopBackOff   vm-host1   2000   512MiB   5m',
    ]);
    expect(printTable(docs, crd, { now: NOW, wide: true }).split('\n')).toEqual([
      'NAME   STATE     REASON             NODE       CPU    MEMORY   IPV4                   AGE',
      'web    RUNNING   <none>             vm-host1   2000   512MiB   192.168.0.1,10.0.0.5   5m',
      'db     FAILED    CrashLoopBackOff   vm-host1   2000   512MiB   <none>                 5m',
    ]);
  });
  it('prints an Image with its registered block storages', () => {
    const img: Resource = { apiVersion: 'n0stack.io/v1alpha1', kind: 'Image', metadata: { name: 'ubuntu' }, spec: { registered_block_storages: [{ block_storage_name: 'a' }, { block_storage_name: 'b' }] } };
    expect(printTable([img], loadCrds().get('Image')!, { now: NOW, noHeaders: true })).toBe('ubuntu   a,b   <unknown>');
  });
  it('ages like kubectl', () => {
    const ago = (s: number) => formatAge(new Date(NOW - s * 1000).toISOString(), NOW);
    expect([ago(5), ago(119), ago(330), ago(1800), ago(3 * 3600 + 1200), ago(30 * 3600), ago(3 * 86400 + 7200), ago(400 * 86400)]).toEqual(['5s', '119s', '5m30s', '30m', '3h20m', '30h', '3d2h', '400d']);
  });
});

describe('output formats', () => {
  it('yaml/json/name; a List for several', () => {
    const docs = [vm('a', []), vm('b', [])];
    expect(printDocuments(docs, 'name', false)).toBe('virtualmachine/a\nvirtualmachine/b');
    expect(JSON.parse(printDocuments(docs, 'json', false))).toMatchObject({ kind: 'List', items: [{ metadata: { name: 'a' } }, { metadata: { name: 'b' } }] });
    expect(printDocuments([docs[0]], 'yaml', true)).toMatch(/^apiVersion: n0stack.io\/v1alpha1\nkind: VirtualMachine\n/);
    expect(() => parseOutputFormat('xml')).toThrow('-o xml: output format must be one of wide, yaml, json, name, seed');
  });
  it('describe shows spec, status and the conditions table', () => {
    const doc = vm('web', ['192.168.0.1']);
    (doc.status as Record<string, unknown>).conditions = [{ type: 'Ready', status: 'False', reason: 'ImageMissing', message: 'BlockStorage "root" not found', lastTransitionTime: '2024-05-01T11:59:00Z' }];
    const text = describeDocument(doc, NOW);
    expect(text).toContain('Name:               web');
    expect(text).toContain('Spec:\n  limit_cpu_milli_core: 2000\n');
    expect(text).toContain('  state: RUNNING');
    expect(text).toContain('Conditions:\n  TYPE    STATUS   REASON         AGE   MESSAGE\n  Ready   False    ImageMissing   60s   BlockStorage "root" not found');
  });
  it('formats a JSON patch as a diff', () => {
    expect(formatPatch('network/a', [{ op: 'replace', path: '/spec/ipv4_cidr', value: '10.0.0.0/24' }, { op: 'add', path: '/annotations/a~1b', value: 'x' }, { op: 'remove', path: '/labels/x' }]))
      .toBe('network/a:\n  ~ spec.ipv4_cidr: "10.0.0.0/24"\n  + annotations.a/b: "x"\n  - labels.x');
    expect(formatPatch('network/a', [])).toBe('network/a: no changes');
  });
});

describe('kind names', () => {
  it.each([['vm', 'VirtualMachine'], ['virtualmachines', 'VirtualMachine'], ['VirtualMachine', 'VirtualMachine'], ['bs', 'BlockStorage'], ['blockstorage', 'BlockStorage'], ['net', 'Network'], ['networks', 'Network'], ['img', 'Image'], ['images', 'Image'], ['node', 'Node'], ['nodes', 'Node']])('%s -> %s', (input, kind) => {
    expect(resolveKind(input)).toBe(kind);
  });
  it('names the choices for an unknown kind', () => {
    expect(() => resolveKind('pods')).toThrow('unknown resource type "pods"');
  });
});
