// A tiny renderer for the subset of Helm's Go templates that charts/n0stack uses, so the chart
// can be checked without a helm binary (none can be installed here): `{{ .Values.a.b }}`,
// `.Release.*`, `.Chart.*`, `{{ . }}`/`{{ .field }}` inside range, pipelines with quote,
// toYaml, nindent, indent and default, `{{- if }}`/`{{- else }}`/`{{- end }}`,
// `{{- range }}`, and the `{{-`/`-}}` whitespace trimming. Anything else throws, so a template
// that grows past this subset fails the test instead of rendering wrongly.
import YAML from 'yaml';

type Node =
  | { type: 'text'; text: string }
  | { type: 'action'; expr: string }
  | { type: 'if'; cond: string; then: Node[]; else: Node[] }
  | { type: 'range'; over: string; body: Node[] };

export interface RenderContext {
  Values: unknown;
  Release: { Name: string; Namespace: string; Service?: string };
  Chart: Record<string, unknown>;
}

function tokenize(src: string): ({ text: string } | { action: string })[] {
  const out: ({ text: string } | { action: string })[] = [];
  let pos = 0;
  while (pos < src.length) {
    const open = src.indexOf('{{', pos);
    if (open < 0) { out.push({ text: src.slice(pos) }); break; }
    const close = src.indexOf('}}', open);
    if (close < 0) throw new Error(`unclosed {{ at offset ${open}`);
    let text = src.slice(pos, open);
    let inner = src.slice(open + 2, close);
    if (inner.startsWith('-')) { text = text.replace(/\s+$/, ''); inner = inner.slice(1); }
    let trimAfter = false;
    if (inner.endsWith('-')) { trimAfter = true; inner = inner.slice(0, -1); }
    out.push({ text }, { action: inner.trim() });
    pos = close + 2;
    if (trimAfter) while (pos < src.length && /\s/.test(src[pos])) pos++;
  }
  return out;
}

function parse(tokens: ReturnType<typeof tokenize>): Node[] {
  let i = 0;
  const block = (closers: string[]): { nodes: Node[]; closer: string } => {
    const nodes: Node[] = [];
    while (i < tokens.length) {
      const t = tokens[i++];
      if ('text' in t) { if (t.text) nodes.push({ type: 'text', text: t.text }); continue; }
      const a = t.action;
      if (a.startsWith('/*')) continue;
      if (closers.includes(a)) return { nodes, closer: a };
      if (a.startsWith('if ')) {
        const then = block(['else', 'end']);
        const els = then.closer === 'else' ? block(['end']).nodes : [];
        nodes.push({ type: 'if', cond: a.slice(3).trim(), then: then.nodes, else: els });
      } else if (a.startsWith('range ')) {
        nodes.push({ type: 'range', over: a.slice(6).trim(), body: block(['end']).nodes });
      } else if (/^(else|end)$|^(define|include|template|with|block)\b/.test(a)) {
        throw new Error(`unsupported or unbalanced template action {{ ${a} }}`);
      } else {
        nodes.push({ type: 'action', expr: a });
      }
    }
    if (closers.length) throw new Error(`missing {{ end }} (expected one of ${closers.join(', ')})`);
    return { nodes, closer: '' };
  };
  return block([]).nodes;
}

function lookup(path: string, root: RenderContext, dot: unknown): unknown {
  if (path === '.') return dot;
  const parts = path.slice(1).split('.');
  // Top-level names resolve from the root only outside range; inside range `.x` is a field of the item.
  let value: unknown = dot === root ? root : dot;
  for (const p of parts) {
    if (value === null || typeof value !== 'object') throw new Error(`${path}: cannot read ${p} of ${JSON.stringify(value)}`);
    value = (value as Record<string, unknown>)[p];
  }
  return value;
}

function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

function splitArgs(cmd: string): string[] {
  return cmd.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
}

function evalArg(arg: string, root: RenderContext, dot: unknown): unknown {
  if (arg.startsWith('"')) return JSON.parse(arg);
  if (/^-?\d+$/.test(arg)) return Number(arg);
  if (arg === 'true' || arg === 'false') return arg === 'true';
  if (arg.startsWith('.')) return lookup(arg, root, dot);
  throw new Error(`unsupported argument ${arg}`);
}

const FUNCTIONS: Record<string, (...args: unknown[]) => unknown> = {
  quote: (v) => JSON.stringify(v === undefined || v === null ? '' : String(v)),
  toYaml: (v) => (v === undefined || v === null ? '' : YAML.stringify(v).replace(/\n$/, '')),
  indent: (n, s) => String(s).split('\n').map((l) => ' '.repeat(Number(n)) + l).join('\n'),
  nindent: (n, s) => `\n${String(s).split('\n').map((l) => ' '.repeat(Number(n)) + l).join('\n')}`,
  default: (d, v) => (truthy(v) ? v : d),
};

function evalPipeline(expr: string, root: RenderContext, dot: unknown): unknown {
  let value: unknown;
  expr.split('|').map((c) => c.trim()).forEach((cmd, index) => {
    const [head, ...rest] = splitArgs(cmd);
    const args = rest.map((a) => evalArg(a, root, dot));
    if (FUNCTIONS[head]) {
      value = FUNCTIONS[head](...args, ...(index > 0 ? [value] : []));
    } else if (index === 0 && rest.length === 0) {
      value = evalArg(head, root, dot);
    } else {
      throw new Error(`unsupported template function ${head} in {{ ${expr} }}`);
    }
  });
  return value;
}

function run(nodes: Node[], root: RenderContext, dot: unknown): string {
  let out = '';
  for (const n of nodes) {
    if (n.type === 'text') out += n.text;
    else if (n.type === 'action') {
      const v = evalPipeline(n.expr, root, dot);
      if (v === undefined) throw new Error(`{{ ${n.expr} }} is undefined (a value missing from values.yaml?)`);
      out += v === null ? '' : String(v);
    } else if (n.type === 'if') out += run(truthy(evalPipeline(n.cond, root, dot)) ? n.then : n.else, root, dot);
    else {
      const list = evalPipeline(n.over, root, dot);
      if (list === undefined || list === null) continue;
      if (!Array.isArray(list)) throw new Error(`range over ${n.over}: not a list`);
      for (const item of list) out += run(n.body, root, item);
    }
  }
  return out;
}

export function render(template: string, context: RenderContext): string {
  return run(parse(tokenize(template)), context, context);
}

/** Helm's value merge: maps merge recursively, everything else (lists too) replaces. */
export function mergeValues(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (base && override && typeof base === 'object' && typeof override === 'object' && !Array.isArray(base) && !Array.isArray(override)) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(override as Record<string, unknown>)) out[k] = mergeValues(out[k], v);
    return out;
  }
  return override;
}
