// The seed's `do` file: a YAML map of task name -> {type, action, args, depends_on, ignore_error}.
// Everything is checked before anything runs, and every problem is reported at once, each naming
// the task and the field, because a half-run DAG is worse than none.
import YAML from 'yaml';
import { InvalidArgumentError } from '../../api/errors';
import { messageFields, methodInfo, serviceForType, serviceMethods, SEED_TYPES, type FieldInfo, type SeedType } from '../proto';
import { inverseOf, producedResource, referencedResources, refKey } from './resources';

export interface Task {
  name: string;
  type: SeedType;
  action: string;
  args: Record<string, unknown>;
  depends_on: string[];
  ignore_error: boolean;
}

/** Tasks in file order. */
export type Dag = Map<string, Task>;

export class DagValidationError extends InvalidArgumentError {
  /** The file(s) the problems are in, for the heading the CLI prints. */
  source?: string;
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

const TASK_KEYS = ['type', 'action', 'args', 'depends_on', 'ignore_error'];

/** The original n0cli's lower-case spellings of `type`; files written for it must run unchanged. */
export const TYPE_ALIASES: Readonly<Record<string, SeedType>> = {
  node: 'Node', network: 'Network', block_storage: 'BlockStorage', virtual_machine: 'VirtualMachine', image: 'Image',
};

/** One raw YAML map per file; parse errors carry the file name and line. */
export function parseDagYaml(text: string, source = 'input'): Record<string, unknown> {
  const doc = YAML.parseDocument(text, { uniqueKeys: true });
  repairStrayColons(doc);
  if (doc.errors.length > 0) {
    throw new DagValidationError(doc.errors.map((e) => `${source}: ${e.message.split('\n')[0]}`));
  }
  const value = doc.toJS() as unknown;
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new DagValidationError([`${source}: a do file is a map of task name -> task, got ${describeValue(value)}`]);
  }
  return value as Record<string, unknown>;
}

/**
 * `image_name: cloudimage-ubuntu:` (a value with a trailing ':') is a YAML error that the parser
 * recovers from by swallowing the following sibling keys into a nested map. Undo the swallowing so
 * the value reads as the map `{cloudimage-ubuntu: null}` (as the seed's Go parser saw it) and the
 * siblings stay where the author put them; validation then names the field and the likely cause.
 */
function repairStrayColons(doc: YAML.Document.Parsed): void {
  const positions = new Set(doc.errors.filter((e) => e.code === 'BLOCK_AS_IMPLICIT_KEY').map((e) => e.pos[0]));
  if (positions.size === 0) return;
  const repaired = new Set<number>();
  const walk = (node: unknown): void => {
    if (YAML.isSeq(node)) { for (const item of node.items) walk(item); return; }
    if (!YAML.isMap(node)) return;
    for (let i = 0; i < node.items.length; i++) {
      const pair = node.items[i];
      const value = pair.value;
      if (YAML.isMap(value) && value.items.length > 0) {
        const first = value.items[0];
        const start = YAML.isScalar(first.key) ? first.key.range?.[0] : undefined;
        if (start !== undefined && positions.has(start) && (first.value === null || (YAML.isScalar(first.value) && first.value.value === null))) {
          const swallowed = value.items.splice(1);
          node.items.splice(i + 1, 0, ...swallowed);
          repaired.add(start);
        }
      }
      walk(pair.value);
    }
  };
  walk(doc.contents);
  doc.errors = doc.errors.filter((e) => !(e.code === 'BLOCK_AS_IMPLICIT_KEY' && repaired.has(e.pos[0])));
}

/** A value that is a one-key map with nothing after the key is a trailing ':' almost always. */
export function strayColonHint(value: unknown): string {
  return isPlainMap(value) && Object.keys(value).length === 1 && Object.values(value)[0] === null
    ? " (is there a stray ':' after the value?)" : '';
}

/** Merges several files into one DAG's raw map (tasks of one file may depend on another's). */
export function mergeDagFiles(files: { source: string; tasks: Record<string, unknown> }[]): Record<string, unknown> {
  const merged: Record<string, unknown> = {};
  const origin = new Map<string, string>();
  const problems: string[] = [];
  for (const { source, tasks } of files) {
    for (const [name, task] of Object.entries(tasks)) {
      if (origin.has(name)) problems.push(`task "${name}" is defined in both ${origin.get(name)} and ${source}`);
      else { origin.set(name, source); merged[name] = task; }
    }
  }
  if (problems.length) throw new DagValidationError(problems);
  return merged;
}

export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (an empty value)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'number') return Number.isInteger(value) ? 'a number' : 'a decimal number';
  if (typeof value === 'boolean') return 'a boolean';
  return `a ${typeof value}`;
}

function isPlainMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}

/** `(did you mean "x"?)` for a near miss, else the full list of choices. */
function suggestion(given: string, choices: string[], noun: string): string {
  const near = (c: string): boolean =>
    levenshtein(given, c) <= Math.max(1, Math.floor(given.length / 4)) ||
    (given.length >= 4 && (c.startsWith(given) || given.startsWith(c)));
  const best = choices.filter(near).sort((x, y) => levenshtein(given, x) - levenshtein(given, y))[0];
  if (best) return `(did you mean "${best}"?)`;
  return `(${noun}: ${choices.join(', ')})`;
}

/**
 * Checks one value against a proto field. Returns problems as "<path> must be ..." fragments.
 * Accepts what proto-loader's serializer accepts from YAML: decimal strings for 64-bit integers.
 */
export function checkField(value: unknown, field: FieldInfo, path: string, element = false): string[] {
  if (field.repeated && !element) {
    if (!Array.isArray(value)) return [`${path} must be a list, got ${describeValue(value)}`];
    return value.flatMap((v, i) => checkField(v, field, `${path}[${i}]`, true));
  }
  switch (field.kind) {
    case 'string':
    case 'bytes':
    case 'enum': {
      if (typeof value === 'string') return [];
      let hint = strayColonHint(value);
      if (typeof value === 'number' || typeof value === 'boolean') {
        hint = ` (quote it if you mean the text: "${String(value)}")`;
      }
      return [`${path} must be a string, got ${describeValue(value)}${hint}`];
    }
    case 'integer':
    case 'unsigned': {
      const ok = field.kind === 'unsigned' ? /^\d+$/ : /^-?\d+$/;
      if (typeof value === 'number' && Number.isSafeInteger(value) && (field.kind === 'integer' || value >= 0)) return [];
      if (typeof value === 'string' && ok.test(value)) return [];
      const what = field.kind === 'unsigned' ? 'a non-negative integer' : 'an integer';
      const shown = typeof value === 'string' || typeof value === 'number' ? ` ${JSON.stringify(value)}` : '';
      return [`${path} must be ${what}, got ${describeValue(value)}${shown}`];
    }
    case 'float':
      return typeof value === 'number' ? [] : [`${path} must be a number, got ${describeValue(value)}`];
    case 'bool':
      return typeof value === 'boolean' ? [] : [`${path} must be true or false, got ${describeValue(value)}`];
    case 'map': {
      if (!isPlainMap(value)) return [`${path} must be a map, got ${describeValue(value)}`];
      return Object.entries(value).flatMap(([k, v]) => checkField(v, field.mapValue!, `${path}.${k}`, true));
    }
    case 'message': {
      if (!isPlainMap(value)) return [`${path} must be a map, got ${describeValue(value)}`];
      return checkMessage(value, field.messageType!, path);
    }
  }
}

/** Checks a map against a message: unknown keys and wrongly typed values. */
export function checkMessage(value: Record<string, unknown>, messageType: string, path: string): string[] {
  const fields = messageFields(messageType);
  const shortName = messageType.slice(messageType.lastIndexOf('.') + 1);
  const problems: string[] = [];
  for (const [key, v] of Object.entries(value)) {
    const field = fields.get(key);
    if (!field) {
      problems.push(`${path}.${key} is not a field of ${shortName} ${suggestion(key, [...fields.keys()], 'fields')}`);
      continue;
    }
    problems.push(...checkField(v, field, `${path}.${key}`));
  }
  return problems;
}

export interface ValidatedDag {
  dag: Dag;
  /** Things that are legal but probably not meant (a task using a resource it does not wait for). */
  warnings: string[];
}

/** Validates a raw map (from parseDagYaml/mergeDagFiles). Throws DagValidationError listing every problem. */
export function validateDag(raw: Record<string, unknown>, scope = 'this file'): ValidatedDag {
  const problems: string[] = [];
  const dag: Dag = new Map();
  const names = Object.keys(raw);
  if (names.length === 0) throw new DagValidationError([`${scope} has no tasks`]);

  for (const [name, value] of Object.entries(raw)) {
    const where = `task "${name}"`;
    if (!isPlainMap(value)) {
      problems.push(`${where} must be a map with type, action and args, got ${describeValue(value)}`);
      continue;
    }
    for (const key of Object.keys(value)) {
      if (!TASK_KEYS.includes(key)) problems.push(`${where}: "${key}" is not a task field ${suggestion(key, TASK_KEYS, 'task fields')}`);
    }
    const { action } = value;
    const type = typeof value.type === 'string' && Object.hasOwn(TYPE_ALIASES, value.type) ? TYPE_ALIASES[value.type] : value.type;
    let typeOk = false;
    if (type === undefined) problems.push(`${where}: type is required (one of ${SEED_TYPES.join(', ')})`);
    else if (typeof type !== 'string' || !(SEED_TYPES as readonly string[]).includes(type)) {
      problems.push(typeof type === 'string'
        ? `${where}: type "${type}" is not a resource type ${suggestion(type, [...SEED_TYPES], 'types')}`
        : `${where}: type must be one of ${SEED_TYPES.join(', ')}, got ${describeValue(type)}${strayColonHint(type)}`);
    } else typeOk = true;

    let requestType: string | undefined;
    if (action === undefined) problems.push(`${where}: action is required (an RPC name such as Create${typeOk ? type : 'VirtualMachine'})`);
    else if (typeof action !== 'string') problems.push(`${where}: action must be a string, got ${describeValue(action)}${strayColonHint(action)}`);
    else if (typeOk) {
      const service = serviceForType(type as SeedType);
      const method = methodInfo(service, action);
      if (!method || method.responseStream) {
        const owner = SEED_TYPES.find((t) => methodInfo(serviceForType(t), action));
        const hint = owner ? `(${action} is an action of type ${owner})` : suggestion(action, serviceMethods(service).map((m) => m.method), 'actions');
        problems.push(`${where}: action "${action}" is not an RPC of ${service} ${hint}`);
      } else requestType = method.requestType;
    }

    let args: Record<string, unknown> = {};
    if (value.args !== undefined && value.args !== null) {
      if (!isPlainMap(value.args)) problems.push(`${where}: args must be a map of request fields, got ${describeValue(value.args)}`);
      else {
        args = value.args;
        if (requestType) problems.push(...checkMessage(args, requestType, 'args').map((p) => `${where}: ${p}`));
      }
    }

    let dependsOn: string[] = [];
    const deps = value.depends_on;
    if (deps !== undefined && deps !== null) {
      const list = typeof deps === 'string' ? [deps] : deps;
      if (!Array.isArray(list) || list.some((d) => typeof d !== 'string')) {
        problems.push(`${where}: depends_on must be a list of task names, got ${describeValue(deps)}`);
      } else {
        dependsOn = [...new Set(list as string[])];
        for (const dep of dependsOn) {
          if (!(dep in raw)) {
            problems.push(`${where}: depends_on names "${dep}", which is not a task in ${scope} (tasks: ${names.join(', ')})`);
          }
        }
      }
    }

    const ignore = value.ignore_error;
    if (ignore !== undefined && ignore !== null && typeof ignore !== 'boolean') {
      problems.push(`${where}: ignore_error must be true or false, got ${describeValue(ignore)}`);
    }

    dag.set(name, { name, type: type as SeedType, action: action as string, args, depends_on: dependsOn, ignore_error: ignore === true });
  }

  if (problems.length === 0) problems.push(...findCycles(dag).map((c) => `dependency cycle: ${c.join(' -> ')}`));
  if (problems.length) throw new DagValidationError(problems);
  return { dag, warnings: raceWarnings(dag) };
}

/** Every elementary cycle found by a depth-first walk, each reported once, starting at its first task in file order. */
export function findCycles(dag: Dag): string[][] {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    state.set(name, 'visiting');
    stack.push(name);
    for (const dep of dag.get(name)?.depends_on ?? []) {
      if (!dag.has(dep)) continue;
      if (state.get(dep) === 'visiting') {
        const cycle = stack.slice(stack.indexOf(dep));
        const key = [...cycle].sort().join('\u0000');
        if (!seen.has(key)) { seen.add(key); cycles.push([...cycle, dep]); }
      } else if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const name of dag.keys()) if (!state.has(name)) visit(name);
  return cycles;
}

/** Tasks grouped by depth: level 0 has no dependencies, level n depends on something in n-1. */
export function levels(dag: Dag): string[][] {
  const depth = new Map<string, number>();
  const depthOf = (name: string): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    const task = dag.get(name)!;
    const d = task.depends_on.length ? 1 + Math.max(...task.depends_on.map(depthOf)) : 0;
    depth.set(name, d);
    return d;
  };
  const result: string[][] = [];
  for (const name of dag.keys()) {
    const d = depthOf(name);
    (result[d] ??= []).push(name);
  }
  return result;
}

/** All tasks that `name` waits for, directly or not. */
export function ancestors(dag: Dag, name: string): Set<string> {
  const out = new Set<string>();
  const walk = (n: string): void => {
    for (const dep of dag.get(n)?.depends_on ?? []) if (!out.has(dep)) { out.add(dep); walk(dep); }
  };
  walk(name);
  return out;
}

function raceWarnings(dag: Dag): string[] {
  const producers = new Map<string, string>();
  for (const task of dag.values()) {
    const produced = producedResource(task.type, task.action, task.args);
    if (produced && !producers.has(refKey(produced))) producers.set(refKey(produced), task.name);
  }
  const warnings: string[] = [];
  for (const task of dag.values()) {
    const before = ancestors(dag, task.name);
    for (const ref of referencedResources(task.type, task.action, task.args)) {
      const producer = producers.get(refKey(ref));
      if (!producer || producer === task.name || before.has(producer) || ancestors(dag, producer).has(task.name)) continue;
      warnings.push(`task "${task.name}" uses ${ref.type} "${ref.name}", which task "${producer}" creates, but does not depend on it; it may run first`);
    }
  }
  return warnings;
}

/**
 * The inverse DAG the seed writes by hand: each creating task becomes its delete (or unregister),
 * and the order flips: what was created first is deleted last. Tasks with nothing to undo are
 * dropped, and the order is kept across them. A task that uses a resource (a VM using a disk) is
 * undone before the resource is deleted even if the forward file forgot to say so.
 */
export function reverseDag(dag: Dag): Dag {
  const inverse = new Map<string, ReturnType<typeof inverseOf>>();
  for (const task of dag.values()) inverse.set(task.name, inverseOf(task.type, task.action, task.args));

  const dependants = new Map<string, string[]>();
  for (const task of dag.values()) for (const dep of task.depends_on) (dependants.get(dep) ?? dependants.set(dep, []).get(dep)!).push(task.name);
  // Kept tasks that come after `name`, looking through dropped tasks.
  const keptDependants = (name: string, seen = new Set<string>()): string[] => {
    const out: string[] = [];
    for (const d of dependants.get(name) ?? []) {
      if (seen.has(d)) continue;
      seen.add(d);
      if (inverse.get(d)) out.push(d);
      else out.push(...keptDependants(d, seen));
    }
    return out;
  };

  // One inverse task per undone thing; two forward tasks that make the same resource share it.
  const identity = (inv: NonNullable<ReturnType<typeof inverseOf>>): string => `${inv.type}.${inv.action}:${JSON.stringify(inv.args)}`;
  const nameOf = new Map<string, string>();
  const taken = new Map<string, string>();
  const out: Dag = new Map();
  // Reverse file order reads naturally: the last thing created is the first thing deleted.
  for (const task of [...dag.values()].reverse()) {
    const inv = inverse.get(task.name);
    if (!inv) continue;
    const id = identity(inv);
    if (!nameOf.has(id)) {
      let name = inv.suggestedName;
      if (taken.has(name) && taken.get(name) !== id) name = `${inv.action}_${inv.suggestedName.replace(/^[A-Za-z]+_/, '')}`;
      let n = 2;
      while (taken.has(name) && taken.get(name) !== id) name = `${inv.suggestedName}_${n++}`;
      taken.set(name, id);
      nameOf.set(id, name);
      out.set(name, { name, type: inv.type, action: inv.action, args: inv.args, depends_on: [], ignore_error: false });
    }
  }
  const taskFor = (forward: string): Task => out.get(nameOf.get(identity(inverse.get(forward)!))!)!;

  const users = new Map<string, string[]>();
  for (const task of dag.values()) {
    if (!inverse.get(task.name)) continue;
    for (const ref of referencedResources(task.type, task.action, task.args)) (users.get(refKey(ref)) ?? users.set(refKey(ref), []).get(refKey(ref))!).push(task.name);
  }
  for (const task of dag.values()) {
    if (!inverse.get(task.name)) continue;
    const target = taskFor(task.name);
    const after = new Set(keptDependants(task.name));
    const produced = producedResource(task.type, task.action, task.args);
    if (produced) {
      for (const user of users.get(refKey(produced)) ?? []) {
        // Only when the forward order agrees (the user came after the creator or was unordered).
        if (user !== task.name && !ancestors(dag, task.name).has(user)) after.add(user);
      }
    }
    for (const a of after) {
      const dep = taskFor(a).name;
      if (dep !== target.name && !target.depends_on.includes(dep)) target.depends_on.push(dep);
    }
  }
  return out;
}

/** The DAG as the seed's YAML (for `--reverse --dry-run -o yaml` and for tests against the seed's files). */
export function dagToYaml(dag: Dag): string {
  const obj: Record<string, unknown> = {};
  for (const t of dag.values()) {
    obj[t.name] = {
      type: t.type, action: t.action, args: t.args,
      ...(t.depends_on.length ? { depends_on: t.depends_on } : {}),
      ...(t.ignore_error ? { ignore_error: true } : {}),
    };
  }
  return YAML.stringify(obj);
}
