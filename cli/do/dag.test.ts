import { DagValidationError, checkField, dagToYaml, findCycles, levels, mergeDagFiles, parseDagYaml, reverseDag, validateDag } from './dag';

const problemsOf = (yaml: string): string[] => {
  try { validateDag(parseDagYaml(yaml)); } catch (err) { if (err instanceof DagValidationError) return err.problems; throw err; }
  throw new Error('expected a DagValidationError');
};
const vm = (extra = '') => `
vm:
  type: VirtualMachine
  action: CreateVirtualMachine
  args:
    name: a
    limit_cpu_milli_core: 1000
${extra}`;

describe('do file validation', () => {
  it('reports an unknown type with the closest one', () => {
    expect(problemsOf('t:\n  type: VirtualMachines\n  action: BootVirtualMachine\n')).toEqual([
      'task "t": type "VirtualMachines" is not a resource type (did you mean "VirtualMachine"?)',
    ]);
    expect(problemsOf('t:\n  type: Pod\n  action: X\n')).toEqual([
      'task "t": type "Pod" is not a resource type (types: Node, Network, BlockStorage, Image, VirtualMachine)',
    ]);
  });

  it('reports an unknown action, naming the type it belongs to when it exists elsewhere', () => {
    expect(problemsOf('t:\n  type: BlockStorage\n  action: GenerateBlockStorage\n')).toEqual([
      'task "t": action "GenerateBlockStorage" is not an RPC of BlockStorageService (GenerateBlockStorage is an action of type Image)',
    ]);
    expect(problemsOf('t:\n  type: VirtualMachine\n  action: BootVirtualMachin\n')).toEqual([
      'task "t": action "BootVirtualMachin" is not an RPC of VirtualMachineService (did you mean "BootVirtualMachine"?)',
    ]);
    expect(problemsOf('t:\n  type: Network\n')).toEqual(['task "t": action is required (an RPC name such as CreateNetwork)']);
  });

  it('reports unknown task keys and args that are not request fields', () => {
    expect(problemsOf(vm('  dependson: [x]\n  args2: {}\n'))).toEqual([
      'task "vm": "dependson" is not a task field (did you mean "depends_on"?)',
      'task "vm": "args2" is not a task field (did you mean "args"?)',
    ]);
    expect(problemsOf(vm('    limit_memory: 5\n    cpu: 1\n    nics:\n      - network: n\n'))).toEqual([
      'task "vm": args.limit_memory is not a field of CreateVirtualMachineRequest (did you mean "limit_memory_bytes"?)',
      'task "vm": args.cpu is not a field of CreateVirtualMachineRequest (fields: name, annotations, request_cpu_milli_core, limit_cpu_milli_core, request_memory_bytes, limit_memory_bytes, block_storage_names, nics, uuid, login_username, ssh_authorized_keys, labels, login_password)',
      'task "vm": args.nics[0].network is not a field of VirtualMachineNIC (did you mean "network_name"?)',
    ]);
  });

  it('reports wrongly typed args: string vs number vs list vs map', () => {
    expect(problemsOf(vm('    uuid: 12\n    block_storage_names: disk\n    nics: {network_name: n}\n    limit_memory_bytes: -1\n    request_memory_bytes: 1.5\n    annotations:\n      vlan: 100\n'))).toEqual([
      'task "vm": args.uuid must be a string, got a number (quote it if you mean the text: "12")',
      'task "vm": args.block_storage_names must be a list, got a string',
      'task "vm": args.nics must be a list, got a map',
      'task "vm": args.limit_memory_bytes must be a non-negative integer, got a number -1',
      'task "vm": args.request_memory_bytes must be a non-negative integer, got a decimal number 1.5',
      'task "vm": args.annotations.vlan must be a string, got a number (quote it if you mean the text: "100")',
    ]);
  });

  it('accepts 64-bit integers written as decimal strings, as proto JSON does', () => {
    expect(checkField('10737418240', { name: 'x', kind: 'unsigned', repeated: false }, 'args.x')).toEqual([]);
    expect(checkField('10 GiB', { name: 'x', kind: 'unsigned', repeated: false }, 'args.x')).toEqual(['args.x must be a non-negative integer, got a string "10 GiB"']);
    expect(checkField('yes', { name: 'x', kind: 'bool', repeated: false }, 'args.x')).toEqual(['args.x must be true or false, got a string']);
  });

  it('reports a stray colon anywhere, keeping the keys that follow it', () => {
    const yaml = 't:\n  type: Network\n  action: ApplyNetwork\n  args:\n    name: net:\n    ipv4_cidr: 10.0.0.0/24\n    domain: 7\n';
    expect(problemsOf(yaml)).toEqual([
      `task "t": args.name must be a string, got a map (is there a stray ':' after the value?)`,
      'task "t": args.domain must be a string, got a number (quote it if you mean the text: "7")',
    ]);
    expect(problemsOf('t:\n  type: Network:\n  action: ApplyNetwork\n')).toEqual([
      `task "t": type must be one of Node, Network, BlockStorage, Image, VirtualMachine, got a map (is there a stray ':' after the value?)`,
    ]);
  });

  it('reports YAML syntax errors with the file and line, and a non-map file', () => {
    expect(() => parseDagYaml('a: [1,\n', 'x.yaml')).toThrow(/^x\.yaml: .*line/);
    expect(() => parseDagYaml('- a\n- b\n', 'x.yaml')).toThrow('x.yaml: a do file is a map of task name -> task, got a list');
    expect(() => parseDagYaml('a: 1\na: 2\n', 'x.yaml')).toThrow(/x\.yaml: Map keys must be unique/);
    expect(problemsOf('')).toEqual(['this file has no tasks']);
  });

  it('names every cycle once', () => {
    const cyc = (name: string, deps: string[]) => `${name}:\n  type: Network\n  action: GetNetwork\n  args: {name: n}\n  depends_on: [${deps.join(', ')}]\n`;
    expect(problemsOf(cyc('a', ['b']) + cyc('b', ['c']) + cyc('c', ['a']) + cyc('d', ['d']) + cyc('e', ['a']))).toEqual([
      'dependency cycle: a -> b -> c -> a',
      'dependency cycle: d -> d',
    ]);
  });

  it('rejects the same task name in two merged files', () => {
    expect(() => mergeDagFiles([{ source: 'a.yaml', tasks: { x: {} } }, { source: 'b.yaml', tasks: { x: {} } }]))
      .toThrow('task "x" is defined in both a.yaml and b.yaml');
  });

  it('groups tasks into levels for --dry-run', () => {
    const t = (deps: string[]) => ({ type: 'Network', action: 'GetNetwork', args: { name: 'n' }, depends_on: deps });
    const { dag } = validateDag({ d: t(['b', 'c']), a: t([]), b: t(['a']), c: t([]) });
    expect(levels(dag)).toEqual([['a', 'c'], ['b'], ['d']]);
    expect(findCycles(dag)).toEqual([]);
  });

  it('reverses through dropped tasks and keeps the round trip through YAML', () => {
    const { dag } = validateDag(parseDagYaml(`
net: {type: Network, action: ApplyNetwork, args: {name: n, ipv4_cidr: 10.0.0.0/24}}
get: {type: Network, action: GetNetwork, args: {name: n}, depends_on: [net]}
disk: {type: BlockStorage, action: CopyBlockStorage, args: {name: d, source_block_storage: base}, depends_on: [get]}
`));
    const reversed = reverseDag(dag);
    expect([...reversed.values()].map((t) => [t.name, t.action, t.args, t.depends_on])).toEqual([
      ['Delete_d', 'DeleteBlockStorage', { name: 'd' }, []],
      ['Delete_n', 'DeleteNetwork', { name: 'n' }, ['Delete_d']],
    ]);
    expect(validateDag(parseDagYaml(dagToYaml(reversed))).dag).toEqual(reversed);
  });

  it('keeps two inverse tasks apart when two kinds share a name', () => {
    const { dag } = validateDag(parseDagYaml(`
net: {type: Network, action: ApplyNetwork, args: {name: x}}
img: {type: Image, action: ApplyImage, args: {name: x}}
`));
    expect([...reverseDag(dag).keys()]).toEqual(['Delete_x', 'DeleteNetwork_x']);
  });
});

describe('the original n0cli\'s lower-case type aliases', () => {
  it('accepts block_storage, virtual_machine, network, node and image as the seed types', () => {
    const { dag } = validateDag(parseDagYaml(`
n: {type: node, action: GetNode, args: {name: vm-host1}}
net: {type: network, action: GetNetwork, args: {name: a}}
bs: {type: block_storage, action: GetBlockStorage, args: {name: b}}
img: {type: image, action: GetImage, args: {name: c}}
vm: {type: virtual_machine, action: GetVirtualMachine, args: {name: d}}
`));
    expect([...dag.values()].map((t) => t.type)).toEqual(['Node', 'Network', 'BlockStorage', 'Image', 'VirtualMachine']);
  });

  it('checks an alias\'s action and args against the service it stands for', () => {
    expect(problemsOf('t:\n  type: block_storage\n  action: GenerateBlockStorage\n')).toEqual([
      'task "t": action "GenerateBlockStorage" is not an RPC of BlockStorageService (GenerateBlockStorage is an action of type Image)',
    ]);
    expect(problemsOf('t:\n  type: virtual_machine\n  action: GetVirtualMachine\n  args: {nme: x}\n')[0]).toMatch(/^task "t": args\.nme is not a field/);
  });

  it('rejects other spellings (the original had no others)', () => {
    expect(problemsOf('t:\n  type: blockstorage\n  action: GetBlockStorage\n')[0]).toMatch(/^task "t": type "blockstorage" is not a resource type/);
  });
});
