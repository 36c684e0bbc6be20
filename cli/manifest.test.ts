import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ManifestError, applyOrder, deleteOrder, manifestKey, parseManifests, readManifestSources, references, validateManifests } from './manifest';

const STACK = `
apiVersion: n0stack.io/v1alpha1
kind: VirtualMachine
metadata: {name: vm1}
spec:
  limit_cpu_milli_core: 1000
  limit_memory_bytes: 536870912
  block_storage_names: [root]
  nics: [{network_name: net1}]
---
apiVersion: n0stack.io/v1alpha1
kind: BlockStorage
metadata: {name: root}
spec: {request_bytes: 1073741824, limit_bytes: 10737418240, backing_block_storage: base}
---
apiVersion: n0stack.io/v1alpha1
kind: Image
metadata: {name: ubuntu}
spec:
  registered_block_storages: [{block_storage_name: base}]
  tags: {latest: base}
---
---
{"apiVersion": "n0stack.io/v1alpha1", "kind": "BlockStorage", "metadata": {"name": "base"}, "spec": {"request_bytes": 1, "limit_bytes": 10737418240, "source_url": "http://127.0.0.1/x.img"}}
---
apiVersion: n0stack.io/v1alpha1
kind: Network
metadata: {name: net1}
spec: {ipv4_cidr: 192.168.0.0/24}
---
apiVersion: n0stack.io/v1alpha1
kind: Image
metadata: {name: empty}
spec: {}
`;

describe('manifests', () => {
  it('parses multi-document YAML and JSON, skipping empty documents', () => {
    const ms = parseManifests(STACK, 'stack.yaml');
    expect(ms.map((m) => manifestKey(m.doc))).toEqual(['VirtualMachine/vm1', 'BlockStorage/root', 'Image/ubuntu', 'BlockStorage/base', 'Network/net1', 'Image/empty']);
    expect(ms[3].source).toBe('stack.yaml#5');
    expect(() => validateManifests(ms)).not.toThrow();
  });

  it('finds references in specs', () => {
    const [vm, root, ubuntu] = parseManifests(STACK, 's');
    expect(references(vm.doc)).toEqual(['BlockStorage/root', 'Network/net1']);
    expect(references(root.doc)).toEqual(['BlockStorage/base']);
    expect(references(ubuntu.doc)).toEqual(['BlockStorage/base']);
  });

  it('orders by references, then pools first and VMs last; delete is the reverse', () => {
    const order = applyOrder(parseManifests(STACK, 's')).map((m) => manifestKey(m.doc));
    expect(order).toEqual(['Network/net1', 'Image/empty', 'BlockStorage/base', 'Image/ubuntu', 'BlockStorage/root', 'VirtualMachine/vm1']);
    expect(deleteOrder(parseManifests(STACK, 's')).map((m) => manifestKey(m.doc))).toEqual([...order].reverse());
  });

  it('names a reference cycle', () => {
    const bs = (name: string, src: string) => `apiVersion: n0stack.io/v1alpha1\nkind: BlockStorage\nmetadata: {name: ${name}}\nspec: {request_bytes: 1, limit_bytes: 1, source_block_storage: ${src}}\n---\n`;
    expect(() => applyOrder(parseManifests(bs('a', 'b') + bs('b', 'a'), 's'))).toThrow('these objects refer to each other in a cycle: BlockStorage/a, BlockStorage/b');
  });

  it('reports envelope and schema problems for every document, with source and field', () => {
    const text = `apiVersion: v1\nkind: Pod\n---\napiVersion: n0stack.io/v1alpha1\nkind: Vm\nmetadata: {name: a}\n---\napiVersion: n0stack.io/v1alpha1\nkind: Network\nspec: {}\n`;
    let problems: string[] = [];
    try { parseManifests(text, 'bad.yaml'); } catch (e) { problems = (e as ManifestError).problems; }
    expect(problems).toEqual([
      'bad.yaml#1: apiVersion must be n0stack.io/v1alpha1, got "v1"',
      'bad.yaml#2: kind must be one of Node, Network, BlockStorage, Image, VirtualMachine, NodeLease, Reservation, NetworkAddress, got "Vm"',
      'bad.yaml#3: Network: metadata.name is required',
    ]);
    const schema = parseManifests(`apiVersion: n0stack.io/v1alpha1\nkind: VirtualMachine\nmetadata: {name: v}\nspec: {limit_memory_bytes: 536870912, cpu: 1}\n---\napiVersion: n0stack.io/v1alpha1\nkind: Network\nmetadata: {name: v}\nspec: {}\n---\napiVersion: n0stack.io/v1alpha1\nkind: Network\nmetadata: {name: v}\nspec: {}\n`, 'vm.yaml');
    try { validateManifests(schema); problems = []; } catch (e) { problems = (e as ManifestError).problems; }
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^vm\.yaml#1: VirtualMachine "v": spec\.(limit_cpu_milli_core is required|cpu is not a known field)/);
    expect(problems[1]).toBe('vm.yaml#3: Network/v is also defined in vm.yaml#2');
    expect(schema[0].doc.spec).toEqual({ limit_memory_bytes: 536870912, cpu: 1 }); // validation works on a copy
  });

  it('reads files, directories and stdin', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0ctl-manifest-'));
    try {
      fs.writeFileSync(path.join(dir, 'b.yaml'), 'apiVersion: n0stack.io/v1alpha1\nkind: Network\nmetadata: {name: b}\n');
      fs.writeFileSync(path.join(dir, 'a.json'), '{"apiVersion":"n0stack.io/v1alpha1","kind":"Network","metadata":{"name":"a"}}');
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a manifest');
      const ms = readManifestSources([dir, '-'], () => 'apiVersion: n0stack.io/v1alpha1\nkind: Image\nmetadata: {name: c}\n');
      expect(ms.map((m) => `${m.source} ${manifestKey(m.doc)}`)).toEqual([`${dir}/a.json Network/a`, `${dir}/b.yaml Network/b`, '<stdin> Image/c']);
      expect(() => readManifestSources([path.join(dir, 'nope.yaml')])).toThrow('nope.yaml: no such file or directory');
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });
});
