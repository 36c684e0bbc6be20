// Output for `get` and `describe`: tables whose columns are the CRDs' additionalPrinterColumns
// (the same ones kubectl shows for our CRDs on a Kubernetes cluster), plus yaml/json/name.
import YAML from 'yaml';
import { InvalidArgumentError } from '../api/errors';
import type { CrdInfo } from '../api/schema';
import type { Condition, Resource } from '../api/types';
import type { Event } from '../api/store/events';
import { formatBytes } from './do/render';

/**
 * The JSONPath subset CRD printer columns use: `.a.b`, `.a[0]`, `.a[*].b`, optionally in `{...}`.
 * Returns every match (a `[*]` can yield several).
 */
export function evalJsonPath(obj: unknown, expr: string): unknown[] {
  let path = expr.trim();
  if (path.startsWith('{') && path.endsWith('}')) path = path.slice(1, -1);
  if (path.startsWith('$')) path = path.slice(1);
  // Filters: only the equality kubectl's printer columns use, e.g. .status.conditions[?(@.type=="Ready")].reason
  const tokens: (string | number | '*' | { key: string; equals: string })[] = [];
  const re = /\.([A-Za-z0-9_-]+)|\[(\*|\d+)\]|\['([^']+)'\]|\[\?\(@\.([A-Za-z0-9_-]+)\s*==\s*["']([^"']*)["']\)\]/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < path.length && (m = re.exec(path))) {
    if (m[1] !== undefined) tokens.push(m[1]);
    else if (m[2] !== undefined) tokens.push(m[2] === '*' ? '*' : Number(m[2]));
    else if (m[3] !== undefined) tokens.push(m[3]);
    else tokens.push({ key: m[4], equals: m[5] });
  }
  if (re.lastIndex !== path.length) throw new InvalidArgumentError(`unsupported JSONPath ${JSON.stringify(expr)}`);
  let current: unknown[] = [obj];
  for (const t of tokens) {
    const next: unknown[] = [];
    for (const v of current) {
      if (v === null || v === undefined) continue;
      if (t === '*') { if (Array.isArray(v)) next.push(...v); else if (typeof v === 'object') next.push(...Object.values(v)); }
      else if (typeof t === 'object') { if (Array.isArray(v)) next.push(...v.filter((e) => e && typeof e === 'object' && String((e as Record<string, unknown>)[t.key]) === t.equals)); }
      else if (typeof t === 'number') { if (Array.isArray(v) && t < v.length) next.push(v[t]); }
      else if (typeof v === 'object' && !Array.isArray(v) && t in (v as object)) next.push((v as Record<string, unknown>)[t]);
    }
    current = next;
  }
  return current.filter((v) => v !== undefined && v !== null);
}

/** kubectl's age: 45s, 5m30s, 3h20m, 2d4h, 400d. */
export function formatAge(since: string | undefined, now: number): string {
  if (!since) return '<unknown>';
  const t = Date.parse(since);
  if (Number.isNaN(t)) return '<invalid>';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return `${d}d${h % 24 ? `${h % 24}h` : ''}`;
  return `${d}d`;
}

export interface Column { name: string; type: string; jsonPath: string; priority?: number }

function cell(doc: unknown, col: Column, now: number): string {
  const values = evalJsonPath(doc, col.jsonPath);
  if (col.type === 'date') return formatAge(values[0] as string | undefined, now);
  if (values.length === 0) return '<none>';
  return values.map((v) => {
    // Byte counts read better as 10.0 GiB than 10737418240.
    if (col.type === 'integer' && /_bytes$/.test(col.jsonPath) && (typeof v === 'number' || /^\d+$/.test(String(v)))) return formatBytes(Number(v)).replace(' ', '');
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }).join(',');
}

export function columnsFor(crd: CrdInfo, wide: boolean): Column[] {
  return [{ name: 'NAME', type: 'string', jsonPath: '.metadata.name' }, ...crd.printerColumns.filter((c) => wide || !c.priority)];
}

export function formatTable(header: string[] | undefined, rows: string[][]): string {
  const all = header ? [header, ...rows] : rows;
  if (all.length === 0) return '';
  const widths = all[0].map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('   ').trimEnd();
  return all.map(line).join('\n');
}

export function printTable(docs: Resource[], crd: CrdInfo, opts: { wide?: boolean; now?: number; noHeaders?: boolean; withKind?: boolean }): string {
  const now = opts.now ?? Date.now();
  const cols = columnsFor(crd, opts.wide ?? false);
  const rows = docs.map((d) => cols.map((c) => {
    const v = cell(d, c, now);
    return c.jsonPath === '.metadata.name' && opts.withKind ? `${crd.kind.toLowerCase()}/${v}` : v;
  }));
  return formatTable(opts.noHeaders ? undefined : cols.map((c) => c.name.toUpperCase()), rows);
}

export type OutputFormat = 'table' | 'wide' | 'yaml' | 'json' | 'name' | 'seed';
export const OUTPUT_FORMATS: OutputFormat[] = ['table', 'wide', 'yaml', 'json', 'name', 'seed'];

export function parseOutputFormat(value: string | undefined): OutputFormat {
  const v = (value ?? 'table') as OutputFormat;
  if (!OUTPUT_FORMATS.includes(v)) throw new InvalidArgumentError(`-o ${value}: output format must be one of ${OUTPUT_FORMATS.filter((f) => f !== 'table').join(', ')}`, '-o');
  return v;
}

/** One document, or a List of several, the way kubectl prints them. */
export function printDocuments(docs: Resource[], format: 'yaml' | 'json' | 'name', single: boolean): string {
  if (format === 'name') return docs.map((d) => `${d.kind.toLowerCase()}/${d.metadata.name}`).join('\n');
  const value = single && docs.length === 1 ? docs[0] : { apiVersion: 'v1', kind: 'List', items: docs };
  return format === 'json' ? JSON.stringify(value, null, 2) : YAML.stringify(value).trimEnd();
}

/** `n0ctl describe`: identity, spec, status facts, then conditions as a table. */
/** A message on one table line (QEMU's stderr lines joined as the agent's probe reason joins them). */
const oneLine = (text: string) => text.split(/\r?\n/).filter(Boolean).join(' | ');

/** kubectl's age of an aggregated Event: `5m`, or `2m (x3 over 10m)`. */
function eventAge(e: Event, now: number): string {
  const last = formatAge(e.lastTimestamp, now);
  return e.count > 1 ? `${last} (x${e.count} over ${formatAge(e.firstTimestamp, now)})` : last;
}

/** `n0ctl get events`: kubectl's columns (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE), oldest first. */
export function printEvents(events: Event[], now: number, noHeaders = false): string {
  return formatTable(noHeaders ? undefined : ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'COUNT', 'MESSAGE'], events.map((e) => [
    formatAge(e.lastTimestamp, now), e.type, e.reason, `${e.involvedObject.kind.toLowerCase()}/${e.involvedObject.name}`, String(e.count), oneLine(e.message),
  ]));
}

/** The Events section of `n0ctl describe` (kubectl describe's). */
export function describeEvents(events: Event[], now: number): string {
  if (!events.length) return 'Events:             <none>';
  const table = formatTable(['TYPE', 'REASON', 'AGE', 'FROM', 'MESSAGE'], events.map((e) => [e.type, e.reason, eventAge(e, now), e.source?.component ?? '', oneLine(e.message)]));
  return `Events:\n${table.trimEnd().split('\n').map((l) => `  ${l}`).join('\n')}`;
}

export function describeDocument(doc: Resource, now: number): string {
  const lines: string[] = [];
  const meta = doc.metadata;
  const kv = (k: string, v: unknown) => lines.push(`${`${k}:`.padEnd(20)}${v === undefined || v === '' ? '<none>' : String(v)}`);
  kv('Name', meta.name);
  kv('Kind', doc.kind);
  kv('Labels', Object.entries(meta.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || undefined);
  kv('Annotations', Object.entries(meta.annotations ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || undefined);
  kv('Created', meta.creationTimestamp ? `${meta.creationTimestamp} (${formatAge(meta.creationTimestamp, now)} ago)` : undefined);
  if (meta.deletionTimestamp) kv('Deleting since', meta.deletionTimestamp);
  if (meta.finalizers?.length) kv('Finalizers', meta.finalizers.join(', '));
  kv('Generation', meta.generation);
  const indent = (text: string) => text.trimEnd().split('\n').map((l) => `  ${l}`).join('\n');
  lines.push('Spec:');
  lines.push(indent(YAML.stringify(doc.spec ?? {})));
  const status = { ...((doc.status ?? {}) as Record<string, unknown>) };
  const conditions = (status.conditions as Condition[] | undefined) ?? [];
  delete status.conditions;
  lines.push('Status:');
  lines.push(Object.keys(status).length ? indent(YAML.stringify(status)) : '  <none>');
  lines.push('Conditions:');
  if (conditions.length === 0) lines.push('  <none>');
  else {
    const table = formatTable(['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'], conditions.map((c) => [
      c.type, c.status, c.reason ?? '', formatAge(c.lastTransitionTime, now), c.message ?? '',
    ]));
    lines.push(indent(table));
  }
  return lines.join('\n');
}

/** A JSON Patch from the facade's dry run, as a readable diff. */
export function formatPatch(kindName: string, ops: unknown[]): string {
  if (ops.length === 0) return `${kindName}: no changes`;
  const lines = [`${kindName}:`];
  for (const raw of ops) {
    const op = raw as { op: string; path: string; value?: unknown; from?: string };
    const field = op.path.replace(/^\//, '').replace(/\//g, '.').replace(/~1/g, '/').replace(/~0/g, '~');
    const value = op.value === undefined ? '' : ` ${JSON.stringify(op.value)}`;
    if (op.op === 'remove') lines.push(`  - ${field}`);
    else if (op.op === 'add') lines.push(`  + ${field}:${value}`);
    else if (op.op === 'replace') lines.push(`  ~ ${field}:${value}`);
    else lines.push(`  ${op.op} ${field}${op.from ? ` from ${op.from}` : ''}${value}`);
  }
  return lines.join('\n');
}
