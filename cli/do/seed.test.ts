// The seed's own use-case files (e2e/seed/, copied unchanged) are the compatibility contract.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DagValidationError, mergeDagFiles, parseDagYaml, reverseDag, validateDag, type Dag } from './dag';

const SEED_DIR = path.resolve(__dirname, '..', '..', 'e2e', 'seed');
const raw = (file: string) => parseDagYaml(fs.readFileSync(path.join(SEED_DIR, file), 'utf8'), file);
const problemsOf = (fn: () => unknown): string[] => {
  try { fn(); } catch (err) { if (err instanceof DagValidationError) return err.problems; throw err; }
  throw new Error('expected a DagValidationError');
};
/** A DAG as a set of "Action(args) <- [Action(args), ...]" lines, independent of task names. */
const shape = (dag: Dag): string[] => {
  const label = (name: string) => { const t = dag.get(name)!; return `${t.type}.${t.action}(${JSON.stringify(t.args)})`; };
  return [...dag.values()].map((t) => `${label(t.name)} <- [${t.depends_on.map(label).sort().join(', ')}]`).sort();
};

describe('the seed use-case files', () => {
  it.each(['boot-vm-from-image.yaml', 'boot-vm-from-image-inverse.yaml', 'idempotent.yaml', 'boot-vm-from-iso-inverse.yaml', 'register-image.yaml', 'generate-blockstorage.yaml'])(
    '%s validates', (file) => {
      const { dag } = validateDag(raw(file));
      expect(dag.size).toBeGreaterThan(0);
      for (const task of dag.values()) expect(task.args).toEqual(expect.any(Object));
    });

  it('boot-vm-from-image.yaml keeps every arg, typed as the seed wrote it', () => {
    const { dag, warnings } = validateDag(raw('boot-vm-from-image.yaml'));
    expect([...dag.keys()]).toEqual(['GenerateBlockStorage', 'ApplyNetwork', 'CreateVirtualMachine']);
    const vm = dag.get('CreateVirtualMachine')!;
    expect(vm).toMatchObject({ type: 'VirtualMachine', action: 'CreateVirtualMachine', depends_on: ['GenerateBlockStorage', 'ApplyNetwork'], ignore_error: false });
    expect(vm.args).toMatchObject({ name: 'test-vm', limit_cpu_milli_core: 1000, block_storage_names: ['test-blockstorage'], nics: [{ network_name: 'test-network', ipv4_address: '192.168.0.1' }] });
    expect(dag.get('GenerateBlockStorage')!.args.tag).toBe('18.04');
    expect(warnings).toEqual([]);
  });

  it('boot-vm-from-iso.yaml: CreateVirtualMachine depends on a task that is not in the file', () => {
    expect(problemsOf(() => validateDag(raw('boot-vm-from-iso.yaml')))).toEqual([
      'task "CreateVirtualMachine": depends_on names "CreateBlockStorage", which is not a task in this file (tasks: FetchISO, ApplyNetwork, CreateVirtualMachine, OpenConsole)',
    ]);
  });

  it('delete-image-detailed.yaml: the stray colon after image_name is reported as such', () => {
    const problems = problemsOf(() => validateDag(raw('delete-image-detailed.yaml')));
    expect(problems).toContain(`task "Unregister_cloudimage-ubuntu-1804-from-cloudimage-ubuntu": args.image_name must be a string, got a map (is there a stray ':' after the value?)`);
    // Alone, the file also refers to the inverse file's Delete_test-vm, twice.
    expect(problems.filter((p) => p.includes('depends_on names "Delete_test-vm"'))).toHaveLength(2);
    expect(problems).toHaveLength(3);
  });

  it('delete-image.yaml needs the inverse file it continues, and validates together with it', () => {
    expect(problemsOf(() => validateDag(raw('delete-image.yaml')))).toEqual([
      'task "Remove_cloudimage-ubuntu": depends_on names "Delete_test-vm", which is not a task in this file (tasks: Remove_cloudimage-ubuntu)',
    ]);
    const merged = mergeDagFiles([
      { source: 'boot-vm-from-image-inverse.yaml', tasks: raw('boot-vm-from-image-inverse.yaml') },
      { source: 'delete-image.yaml', tasks: raw('delete-image.yaml') },
    ]);
    expect([...validateDag(merged, 'these files').dag.keys()]).toEqual(['Delete_test-vm', 'Delete_test-blockstorage', 'Delete_test-network', 'Remove_cloudimage-ubuntu']);
  });

  it('register-image.yaml validates but warns that RegisterBlockStorage does not wait for FetchISO', () => {
    expect(validateDag(raw('register-image.yaml')).warnings).toEqual([
      'task "RegisterBlockStorage" uses BlockStorage "cloudimage-ubuntu-1804", which task "FetchISO" creates, but does not depend on it; it may run first',
    ]);
  });
});

describe('--reverse of every seed file', () => {
  it('boot-vm-from-image.yaml reverses to exactly the seed\'s hand-written inverse, task names included', () => {
    const reversed = reverseDag(validateDag(raw('boot-vm-from-image.yaml')).dag);
    const seedInverse = validateDag(raw('boot-vm-from-image-inverse.yaml')).dag;
    expect(new Set(reversed.keys())).toEqual(new Set(seedInverse.keys()));
    for (const [name, task] of seedInverse) expect(reversed.get(name)).toEqual(task);
  });

  it('idempotent.yaml reverses to the same inverse (its own deletes are dropped)', () => {
    const reversed = reverseDag(validateDag(raw('idempotent.yaml')).dag);
    expect(shape(reversed)).toEqual(shape(validateDag(raw('boot-vm-from-image-inverse.yaml')).dag));
  });

  it('boot-vm-from-iso.yaml, once its missing dependency is fixed, reverses to the seed\'s inverse (OpenConsole dropped)', () => {
    const fixed = raw('boot-vm-from-iso.yaml');
    (fixed.CreateVirtualMachine as { depends_on: string[] }).depends_on = ['FetchISO', 'ApplyNetwork'];
    const reversed = reverseDag(validateDag(fixed).dag);
    expect(shape(reversed)).toEqual(shape(validateDag(raw('boot-vm-from-iso-inverse.yaml')).dag));
    expect([...reversed.values()].some((t) => t.action === 'OpenConsole')).toBe(false);
  });

  it('register-image.yaml reverses to unregister, then delete image and block storage', () => {
    const reversed = reverseDag(validateDag(raw('register-image.yaml')).dag);
    expect(Object.fromEntries([...reversed].map(([n, t]) => [n, [t.action, t.args, t.depends_on]]))).toEqual({
      'Unregister_cloudimage-ubuntu-1804-from-cloudimage-ubuntu': ['UnregisterBlockStorage', { image_name: 'cloudimage-ubuntu', block_storage_name: 'cloudimage-ubuntu-1804' }, []],
      'Delete_cloudimage-ubuntu': ['DeleteImage', { name: 'cloudimage-ubuntu' }, ['Unregister_cloudimage-ubuntu-1804-from-cloudimage-ubuntu']],
      // The forward file forgot FetchISO -> RegisterBlockStorage; the reference still orders the delete.
      'Delete_cloudimage-ubuntu-1804': ['DeleteBlockStorage', { name: 'cloudimage-ubuntu-1804' }, ['Unregister_cloudimage-ubuntu-1804-from-cloudimage-ubuntu']],
    });
  });

  it('generate-blockstorage.yaml reverses to deleting the generated block storage by block_storage_name', () => {
    const reversed = reverseDag(validateDag(raw('generate-blockstorage.yaml')).dag);
    expect([...reversed.values()]).toEqual([
      { name: 'Delete_test-blockstorage', type: 'BlockStorage', action: 'DeleteBlockStorage', args: { name: 'test-blockstorage' }, depends_on: [], ignore_error: false },
    ]);
  });

  it.each(['boot-vm-from-image-inverse.yaml', 'boot-vm-from-iso-inverse.yaml'])('%s (only deletes) reverses to nothing', (file) => {
    expect(reverseDag(validateDag(raw(file)).dag).size).toBe(0);
  });

  it.each(['boot-vm-from-iso.yaml', 'delete-image.yaml', 'delete-image-detailed.yaml'])('%s cannot be reversed before it validates', (file) => {
    expect(() => reverseDag(validateDag(raw(file)).dag)).toThrow(DagValidationError);
  });
});
