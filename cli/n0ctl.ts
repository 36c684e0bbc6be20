#!/usr/bin/env node
// n0ctl: the user's CLI, kubectl-like, and the seed's `do` DAG runner.
import * as fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import YAML from 'yaml';
import { InvalidArgumentError, N0Error } from '../api/errors';
import { loadCrds } from '../api/schema';
import { KINDS, PLURALS, type Condition, type Kind, type Resource } from '../api/types';
import { latestCondition } from '../api/conditions';
import { CallError, FacadeClient, parseEndpoint } from './client';
import { bashCompletion, completionModel, zshCompletion } from './completion';
import { configPath, loadConfig, readTokenFile, redactedConfig, resolveConnection, useContext, type ConnectionFlags } from './config';
import { attachConsole } from './console';
import { deployCommand } from './deploy/command';
import { DagValidationError, dagToYaml, findCycles, levels, mergeDagFiles, parseDagYaml, reverseDag, validateDag, type Dag, type Task } from './do/dag';
import { LiveRenderer, OriginalRenderer, PlainRenderer, RateMeter, formatDuration, type Renderer } from './do/render';
import { goCodeName, originalJson } from './do/original-json';
import { runDag, type TaskContext, type TaskStatus } from './do/run';
import { resolveKind } from './kinds';
import { ManifestError, applyOrder, deleteOrder, readManifestSources, validateManifests } from './manifest';
import { OUTPUT_FORMATS, describeDocument, describeEvents, formatPatch, parseOutputFormat, printDocuments, printEvents, printTable } from './printer';
import { eventsFor, type Event } from '../api/store/events';
import { methodInfo, serviceForType } from './proto';
import { exitAfterFlush, onReaderGone } from './stdio';
import { VERSION } from './version';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

/** A failure already reported to the user; only the exit code is left to set. */
class ReportedFailure extends Error {
  constructor(readonly exitCode: number) { super('reported'); }
}

const out = (text: string): void => { if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`); };
const err = (text: string): void => { process.stderr.write(text.endsWith('\n') ? text : `${text}\n`); };

/** "10m", "90s", "1h", "500ms", or plain seconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new N0Error('InvalidArgument', `--timeout ${JSON.stringify(value)}: use a duration such as 30s, 10m or 1h`, '--timeout');
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(n * unit);
}

const program = new Command('n0ctl')
  .description('n0stack command line client: declarative (apply/get/diff/delete), imperative (boot, shutdown, console) and the seed\'s `do` DAG files')
  .version(VERSION)
  .option('--api-endpoint <host:port>', 'facade address (env N0STACK_API_ENDPOINT, then the original n0cli\'s N0CLI_API_ENDPOINT, then the context; default 127.0.0.1:20180)')
  .option('--token-file <file>', 'file holding the bearer token (env N0STACK_TOKEN; default the context\'s token); never the token itself on a command line')
  .option('--context <name>', 'context from the config file (env N0STACK_CONFIG names the file; default ~/.n0stack/config)')
  .option('--ca <file>', 'CA certificate (PEM) the facade\'s certificate must chain to (env N0STACK_CA; default the context\'s, else the system roots); an http:// endpoint is plaintext')
  .option('--timeout <duration>', 'deadline of each API call', '10m')
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText('after', `
Exit codes:
  0  success
  1  a call or task failed (the message starts with the gRPC code, e.g. NOT_FOUND)
  2  usage or validation error (nothing was sent to the API)
  A closed stdout (n0ctl ... | head) ends n0ctl at once and quietly: exit 0 (or the code
  of a run that had already ended).

Examples:
  n0ctl --api-endpoint=192.168.122.10:20180 get node
  n0ctl do boot-vm-from-image.yaml
  n0ctl apply -f stack.yaml
  n0ctl console vm test-vm
  n0ctl deploy -f n0deploy -i ~/.ssh/id_ed25519 vm test-vm`);

function globals(): ConnectionFlags & { timeoutMs: number } {
  const o = program.opts<{ apiEndpoint?: string; tokenFile?: string; context?: string; ca?: string; timeout: string }>();
  return { apiEndpoint: o.apiEndpoint, token: o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : undefined, context: o.context, ca: o.ca, timeoutMs: parseDuration(o.timeout) };
}

async function withClient<T>(fn: (client: FacadeClient, timeoutMs: number) => Promise<T>): Promise<T> {
  const g = globals();
  const connection = resolveConnection(loadConfig(), g, process.env);
  const client = new FacadeClient(connection, g.timeoutMs);
  try { return await fn(client, g.timeoutMs); } finally { client.close(); }
}

/** Ctrl-C cancels the running calls once; a second one exits at once. */
function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSigint = (): void => {
    if (controller.signal.aborted) process.exit(130);
    err('\n[n0ctl] interrupted; cancelling (Ctrl-C again to quit now)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.removeListener('SIGINT', onSigint) };
}

// ---------------------------------------------------------------------------------------------
// do

function loadDag(files: string[]): { dag: Dag; warnings: string[] } {
  const raws = files.map((file) => {
    let text: string;
    try { text = file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8'); } catch (e) {
      throw new DagValidationError([`${file}: ${(e as Error).message}`]);
    }
    return { source: file, tasks: parseDagYaml(text, file) };
  });
  try {
    const merged = raws.length === 1 ? raws[0].tasks : mergeDagFiles(raws);
    return validateDag(merged, raws.length === 1 ? 'this file' : 'these files');
  } catch (e) {
    if (e instanceof DagValidationError) e.source = files.join(', ');
    throw e;
  }
}

function taskSummary(t: Task): string {
  const name = t.args.name ?? t.args.block_storage_name ?? t.args.image_name;
  return `${t.type}.${t.action}${name !== undefined ? ` ${JSON.stringify(name)}` : ''}${t.ignore_error ? ' (ignore_error)' : ''}`;
}

/**
 * Reads `kind/name` every second (first after `firstMs`) until stopped, handing each copy to
 * `onDocument`; a read that fails (not created yet, a blip) is simply the next one's job.
 */
function pollDocument(client: FacadeClient, kind: Kind, name: string, signal: AbortSignal | undefined, firstMs: number, onDocument: (doc: Resource) => void): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async (): Promise<void> => {
    try {
      const doc = await client.getDocument(kind, name, { deadlineMs: 5000, signal });
      if (!stopped) onDocument(doc);
    } catch { /* not created yet, or a blip: the next poll will tell */ }
    if (!stopped) timer = setTimeout(() => void poll(), 1000);
  };
  timer = setTimeout(() => void poll(), firstMs);
  return () => { stopped = true; if (timer) clearTimeout(timer); };
}

/** Follows the block storage's status while a FetchBlockStorage runs, for phase, bytes, rate and ETA. */
function fetchProgress(client: FacadeClient, task: Task, ctx: TaskContext): () => void {
  let meter = new RateMeter();
  let phase: string | undefined;
  return pollDocument(client, 'BlockStorage', String(task.args.name), ctx.signal, 500, (doc) => {
    const p = (doc.status as { progress?: { bytes_done?: number; bytes_total?: number; phase?: string } } | undefined)?.progress;
    if (!p) return;
    // Each phase counts its own bytes (download, then convert); a rate across them means nothing.
    if (p.phase !== phase) { meter = new RateMeter(); phase = p.phase; }
    const done = Number(p.bytes_done ?? 0);
    const total = Number(p.bytes_total ?? 0);
    const rate = meter.sample(Date.now(), done);
    if (done > 0 || total > 0) ctx.progress({ done, total, rate, phase: p.phase || undefined });
  });
}

const KIND_OF_TYPE = new Map<string, Kind>(KINDS.map((k) => [k.toLowerCase(), k]));

/** The object a `do` task waits on, for conditionStatus. */
function taskTarget(task: Task): { kind: Kind; name: string } | undefined {
  const kind = KIND_OF_TYPE.get(task.type.replace(/_/g, '').toLowerCase());
  const name = task.args.name ?? task.args.image_name;
  return kind && typeof name === 'string' ? { kind, name } : undefined;
}

/**
 * While an RPC waits, tells `onMessage` what the object it waits on says: its latest condition
 * (e.g. "StartFailed: starting again in 2 s: QEMU exited ..."), polled every second, so a slow
 * step is never a silent one.
 */
function conditionStatus(client: FacadeClient, target: { kind: Kind; name: string } | undefined, signal: AbortSignal | undefined, onMessage: (message: string) => void): () => void {
  if (!target) return () => undefined;
  return pollDocument(client, target.kind, target.name, signal, 1000, (doc) => {
    const latest = latestCondition((doc.status as { conditions?: Condition[] } | undefined)?.conditions);
    if (latest) onMessage(`${latest.reason ?? latest.type}${latest.message ? `: ${latest.message}` : ''}`);
  });
}

/** On a TTY, one self-overwriting stderr line with what the awaited object says; cleared at the end. */
function waitingLine(client: FacadeClient, target: { kind: Kind; name: string }): () => void {
  if (!process.stderr.isTTY) return () => undefined;
  let shown = false;
  const stop = conditionStatus(client, target, undefined, (m) => {
    const width = Math.max(20, (process.stderr.columns ?? 80) - 1);
    process.stderr.write(`\r\x1b[K  ${m.length > width - 2 ? `${m.slice(0, width - 3)}\u2026` : m}`);
    shown = true;
  });
  return () => { stop(); if (shown) process.stderr.write('\r\x1b[K'); };
}

/** A finished task's response as the original n0cli printed it (cli/do/original-json.ts). */
function taskResponseJson(s: TaskStatus): unknown {
  const info = methodInfo(serviceForType(s.task.type), s.task.action);
  return info ? originalJson(info.responseType, (s.result ?? {}) as Record<string, unknown>) : s.result;
}

/** A failure in grpc-go's words, as the original printed it: `rpc error: code = NotFound desc = ...`. */
function originalError(e: unknown): string {
  if (e instanceof CallError) return `rpc error: code = ${goCodeName(e.codeName)} desc = ${e.details}`;
  return e instanceof Error ? e.message : String(e);
}

async function runDo(files: string[], opts: { dryRun?: boolean; reverse?: boolean; concurrency: string; plain?: boolean; output?: string; failFast?: boolean }): Promise<void> {
  const { dag: forward, warnings } = loadDag(files);
  for (const w of warnings) err(`warning: ${w}`);
  let dag = forward;
  if (opts.reverse) {
    dag = reverseDag(forward);
    const cycles = findCycles(dag);
    if (cycles.length) throw new DagValidationError(cycles.map((c) => `the reversed DAG has a cycle: ${c.join(' -> ')}`));
    if (dag.size === 0) { out('nothing to reverse: no task creates anything (Create/Apply/Fetch/Copy/Generate/Register)'); return; }
  }
  if (opts.dryRun) {
    if (opts.output === 'yaml') { out(dagToYaml(dag)); return; }
    if (opts.output !== undefined) throw new N0Error('InvalidArgument', '-o: do --dry-run prints levels, or the DAG with -o yaml (-o json is for a run)', '-o');
    levels(dag).forEach((level, i) => {
      out(`level ${i + 1}:`);
      for (const name of level) {
        const t = dag.get(name)!;
        out(`  ${name}: ${taskSummary(t)}${t.depends_on.length ? ` after ${t.depends_on.join(', ')}` : ''}`);
      }
    });
    return;
  }
  if (opts.output !== undefined && opts.output !== 'json') throw new N0Error('InvalidArgument', `-o ${opts.output}: a run prints each response with -o json; -o yaml is for --dry-run`, '-o');
  const original = opts.output === 'json';
  const concurrency = Number(opts.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new N0Error('InvalidArgument', '--concurrency must be a positive integer', '--concurrency');
  await withClient(async (client, timeoutMs) => {
    const live = !original && !opts.plain && process.stdout.isTTY;
    const renderer: Renderer = original ? new OriginalRenderer(process.stdout, dag.size, taskResponseJson)
      : live ? new LiveRenderer(process.stdout) : new PlainRenderer(process.stdout);
    const interrupt = interruptSignal();
    const t0 = Date.now();
    try {
      const { ok, statuses } = await runDag(dag, async (task, ctx) => {
        const stop = task.action === 'FetchBlockStorage' ? fetchProgress(client, task, ctx) : live ? conditionStatus(client, taskTarget(task), ctx.signal, (m) => ctx.status(m)) : () => undefined;
        try {
          return await client.call(serviceForType(task.type), task.action, task.args, { deadlineMs: timeoutMs, signal: ctx.signal });
        } finally { stop(); }
      }, {
        concurrency, signal: interrupt.signal, failFast: !!opts.failFast, onChange: (s, all) => renderer.update(s, all),
        ...(original ? { errorMessage: originalError } : {}),
      });
      renderer.finish(statuses);
      const count = (state: string) => [...statuses.values()].filter((s) => s.state === state).length;
      const summary = ['done', 'failed', 'ignored', 'skipped'].map((s) => [s, count(s)] as const).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(', ');
      (ok && !original ? out : err)(`${summary} in ${formatDuration(Date.now() - t0)}`);
      if (original) err(ok ? 'DAG tasks are completed' : 'Failed to do tasks');
      if (live) for (const s of statuses.values()) if (s.state === 'failed') err(`[failed] ${s.name}: ${s.error}`);
      // OpenConsole's answer is the one thing the user needs to see from a DAG.
      for (const s of statuses.values()) {
        const url = (s.result as { console_url?: string } | undefined)?.console_url;
        if (s.state === 'done' && url && !original) out(`${s.name}: console ${url}`);
      }
      if (!ok) throw new ReportedFailure(EXIT_FAILURE);
    } finally { interrupt.dispose(); }
  });
}

program.command('do')
  .description('run the seed\'s DAG file(s): task name -> {type, action, args, depends_on, ignore_error}')
  .argument('<file...>', 'YAML file(s); several are merged into one DAG ("-" reads stdin)')
  .option('--dry-run', 'validate and print the plan (levels of the DAG) without calling anything')
  .option('--reverse', 'run the inverse DAG: delete what the file creates, in reverse order')
  .option('-o, --output <format>', 'json: print each task\'s response as the original n0cli did (its field names, enum names, 64-bit integers as strings); with --dry-run: yaml prints the (reversed) DAG as a do file')
  .option('--concurrency <n>', 'at most this many calls at once', '8')
  .option('--plain', 'plain lines even on a terminal')
  .option('--fail-fast', 'after the first failure start no new task (the original n0cli\'s behaviour); running ones finish')
  .addHelpText('after', `
Every task's type, action (an RPC of <type>Service), args (fields of its request message) and
depends_on are checked before anything runs. type also takes the original n0cli's lower-case
names (node, network, block_storage, image, virtual_machine). Tasks start as soon as their
dependencies finish; a failed task skips its dependants unless it has ignore_error: true, and
tasks that do not depend on it still run unless --fail-fast is given.

Examples:
  n0ctl do boot-vm-from-image.yaml
  n0ctl do --dry-run boot-vm-from-image.yaml
  n0ctl do --reverse boot-vm-from-image.yaml          # delete what it created
  n0ctl do --reverse --dry-run -o yaml boot-vm-from-image.yaml > inverse.yaml
  n0ctl do boot-vm-from-image-inverse.yaml delete-image.yaml`)
  .action((files: string[], opts) => runDo(files, opts));

// ---------------------------------------------------------------------------------------------
// apply / diff / delete

function loadManifests(files: string[] | undefined): ReturnType<typeof readManifestSources> {
  if (!files || files.length === 0) throw new N0Error('InvalidArgument', '-f is required: a file, a directory or - for stdin', '-f');
  const manifests = readManifestSources(files);
  if (manifests.length === 0) throw new N0Error('InvalidArgument', `no objects found in ${files.join(', ')}`, '-f');
  validateManifests(manifests);
  return manifests;
}

const kindName = (doc: { kind: string; metadata: { name: string } }): string => `${doc.kind.toLowerCase()}/${doc.metadata.name}`;

program.command('apply')
  .description('create or update objects from manifests, in dependency order')
  .option('-f, --filename <path...>', 'file, directory or - (stdin); YAML or JSON, several documents each')
  .option('--dry-run', 'validate on the server and show what would change, without writing')
  .option('--no-wait', 'return once written instead of waiting until each object is Ready')
  .addHelpText('after', `
Order: what an object refers to comes first (networks and block storages before the VMs that
use them, backing block storages before their overlays, registered block storages before images).

Examples:
  n0ctl apply -f vm.yaml
  n0ctl apply -f manifests/ --dry-run
  cat vm.yaml | n0ctl apply -f -`)
  .action((opts: { filename?: string[]; dryRun?: boolean; wait: boolean }) => withClient(async (client, timeoutMs) => {
    const manifests = applyOrder(loadManifests(opts.filename));
    let failed = 0;
    for (const m of manifests) {
      try {
        const res = await client.applyDocument(m.doc, { dryRun: opts.dryRun, wait: opts.wait }, { deadlineMs: timeoutMs });
        out(`${kindName(m.doc)} ${res.result}${opts.dryRun ? ' (dry run)' : ''}`);
      } catch (e) {
        failed++;
        err(`${kindName(m.doc)}: ${(e as Error).message}`);
        // Later objects may depend on this one; stop rather than pile up failures.
        break;
      }
    }
    if (failed) throw new ReportedFailure(EXIT_FAILURE);
  }));

program.command('diff')
  .description('show what apply would change (the server compares with what is stored)')
  .option('-f, --filename <path...>', 'file, directory or - (stdin)')
  .addHelpText('after', `
Exit code 0 when nothing would change, 1 when something would (as kubectl diff) or a call failed,
2 when the manifests are invalid.

Examples:
  n0ctl diff -f vm.yaml`)
  .action((opts: { filename?: string[] }) => withClient(async (client, timeoutMs) => {
    let changed = false;
    for (const m of applyOrder(loadManifests(opts.filename))) {
      const res = await client.applyDocument(m.doc, { dryRun: true }, { deadlineMs: timeoutMs });
      if (res.result === 'created') out(`${kindName(m.doc)}: would be created`);
      else out(formatPatch(kindName(m.doc), res.diff));
      if (res.result !== 'unchanged') changed = true;
    }
    if (changed) throw new ReportedFailure(EXIT_FAILURE);
  }));

program.command('delete')
  .description('delete objects named in manifests (reverse order) or one object by kind and name')
  .argument('[kind]', 'vm, bs, net, img, node (or full names)')
  .argument('[name]', 'object name')
  .option('-f, --filename <path...>', 'file, directory or - (stdin)')
  .option('--no-wait', 'return once deletion is requested instead of when the object is gone')
  .option('--ignore-not-found', 'treat a missing object as deleted')
  .addHelpText('after', `
Examples:
  n0ctl delete vm test-vm
  n0ctl delete -f stack.yaml`)
  .action((kind: string | undefined, name: string | undefined, opts: { filename?: string[]; wait: boolean; ignoreNotFound?: boolean }) => withClient(async (client, timeoutMs) => {
    let targets: { kind: Kind; name: string }[];
    if (opts.filename) {
      if (kind) throw new N0Error('InvalidArgument', 'give either -f or KIND NAME, not both');
      targets = deleteOrder(loadManifests(opts.filename)).map((m) => ({ kind: m.doc.kind, name: m.doc.metadata.name }));
    } else {
      if (!kind || !name) throw new N0Error('InvalidArgument', 'delete needs KIND NAME or -f FILE');
      targets = [{ kind: resolveKind(kind), name }];
    }
    let failed = false;
    for (const t of targets) {
      try {
        await client.deleteDocument(t.kind, t.name, opts.wait, { deadlineMs: timeoutMs });
        out(`${t.kind.toLowerCase()}/${t.name} deleted`);
      } catch (e) {
        if (opts.ignoreNotFound && e instanceof CallError && e.codeName === 'NOT_FOUND') continue;
        err(`${t.kind.toLowerCase()}/${t.name}: ${(e as Error).message}`);
        failed = true;
      }
    }
    if (failed) throw new ReportedFailure(EXIT_FAILURE);
  }));

// ---------------------------------------------------------------------------------------------
// get / describe

/** `get -o seed`: the seed's Get/List answer, printed as the original n0cli printed it. */
async function seedGet(client: FacadeClient, kind: Kind, name: string | undefined, selector: string, timeoutMs: number): Promise<unknown> {
  const service = `${kind}Service`;
  const plural = ({ Node: 'Nodes', Network: 'Networks', BlockStorage: 'BlockStorages', Image: 'Images', VirtualMachine: 'VirtualMachines' } as Partial<Record<Kind, string>>)[kind];
  if (!plural) throw new InvalidArgumentError(`-o seed: the seed has no RPCs for ${kind} (an n0stack-internal kind); use -o yaml`, 'output');
  const [method, request] = name ? [`Get${kind}`, { name }] : [`List${plural}`, { label_selector: selector }];
  const response = await client.call(service, method, request, { deadlineMs: timeoutMs });
  return originalJson(methodInfo(service, method)!.responseType, response);
}

function render(docs: Resource[], kind: Kind, format: ReturnType<typeof parseOutputFormat>, single: boolean, noHeaders: boolean): string {
  if (format === 'yaml' || format === 'json' || format === 'name') return printDocuments(docs, format, single);
  if (docs.length === 0) return '';
  return printTable(docs, loadCrds().get(kind)!, { wide: format === 'wide', noHeaders });
}

const EVENT_KINDS = new Set(['event', 'events', 'ev']);

/** `n0ctl get events [NAME] [-w]`: the controllers' Events, oldest first. */
async function getEvents(client: FacadeClient, name: string | undefined, opts: { output?: string; watch?: boolean; headers: boolean }, timeoutMs: number): Promise<void> {
  const format = parseOutputFormat(opts.output);
  if (format === 'seed') throw new N0Error('InvalidArgument', 'events have no seed form', '-o');
  const { items, resourceVersion } = await client.listDocuments('Event', '', { deadlineMs: timeoutMs });
  const events = (items as unknown as Event[]).filter((e) => !name || e.metadata.name === name);
  const show = (list: Event[], single: boolean, headers: boolean) => (format === 'yaml' || format === 'json' || format === 'name'
    ? printDocuments(list as unknown as Resource[], format, single) : printEvents(list, Date.now(), !headers));
  if (events.length === 0 && !opts.watch && (format === 'table' || format === 'wide')) err('No events found.');
  else if (events.length) out(show(events, !!name, opts.headers));
  if (!opts.watch) return;
  const interrupt = interruptSignal();
  try {
    for await (const ev of client.watchDocuments('Event', '', resourceVersion, interrupt.signal)) {
      const e = JSON.parse(ev.document_json) as Event;
      if ((name && e.metadata.name !== name) || ev.type === 'DELETED') continue;
      if (format === 'json') out(JSON.stringify({ type: ev.type, object: e }));
      else if (format === 'yaml') out(`---\n# ${ev.type}\n${printDocuments([e as unknown as Resource], 'yaml', true)}`);
      else out(show([e], true, false));
    }
  } finally { interrupt.dispose(); }
}

program.command('get')
  .description('list objects or show one, as a table with the CRD columns or as yaml/json; `get events` lists the controllers\' Events')
  .argument('<kind>', `vm|virtualmachine(s), bs|blockstorage(s), net|network(s), img|image(s), node(s), event(s)`)
  .argument('[name]', 'one object')
  .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS.filter((f) => f !== 'table')))
  .option('-l, --selector <selector>', 'label selector, e.g. env=prod,tier!=db')
  .option('-w, --watch', 'after listing, print changes as they happen (Ctrl-C to stop)')
  .option('--no-headers', 'table without its header line')
  .addHelpText('after', `
-o seed prints the seed's own JSON (its List/Get RPCs), e.g. what the seed's "n0cli get node" showed.

Examples:
  n0ctl get vm
  n0ctl get vm test-vm -o yaml
  n0ctl get bs -o wide
  n0ctl get node -o seed
  n0ctl get net -l env=lab -w
  n0ctl get events -w`)
  .action((kindArg: string, name: string | undefined, opts: { output?: string; selector?: string; watch?: boolean; headers: boolean }) => withClient(async (client, timeoutMs) => {
    if (EVENT_KINDS.has(kindArg.toLowerCase())) return getEvents(client, name, opts, timeoutMs);
    const kind = resolveKind(kindArg);
    const format = parseOutputFormat(opts.output);
    if (format === 'seed') {
      if (opts.watch) throw new N0Error('InvalidArgument', '-o seed cannot be combined with --watch', '-o');
      out(JSON.stringify(await seedGet(client, kind, name, opts.selector ?? '', timeoutMs), null, 2));
      return;
    }
    let docs: Resource[];
    let resourceVersion = '';
    if (name) docs = [await client.getDocument(kind, name, { deadlineMs: timeoutMs })];
    else ({ items: docs, resourceVersion } = await client.listDocuments(kind, opts.selector ?? '', { deadlineMs: timeoutMs }));
    if (docs.length === 0 && !opts.watch && (format === 'table' || format === 'wide')) err(`No ${PLURALS[kind]} found.`);
    else out(render(docs, kind, format, !!name, !opts.headers));
    if (!opts.watch) return;
    const interrupt = interruptSignal();
    try {
      for await (const ev of client.watchDocuments(kind, opts.selector ?? '', resourceVersion, interrupt.signal)) {
        const doc = JSON.parse(ev.document_json) as Resource;
        if (name && doc.metadata.name !== name) continue;
        if (format === 'yaml') out(`---\n# ${ev.type}\n${printDocuments([doc], 'yaml', true)}`);
        else if (format === 'json') out(JSON.stringify({ type: ev.type, object: doc }));
        else if (format === 'name') out(`${ev.type} ${kindName(doc)}`);
        else out(`${render([doc], kind, format, true, true)}   ${ev.type}`);
      }
    } finally { interrupt.dispose(); }
  }));

program.command('describe')
  .description('show one object in detail: metadata, spec, status, conditions and its Events')
  .argument('<kind>', 'vm, bs, net, img, node (or full names)')
  .argument('<name>', 'object name')
  .addHelpText('after', `
Examples:
  n0ctl describe vm test-vm
  n0ctl describe bs test-blockstorage`)
  .action((kindArg: string, name: string) => withClient(async (client, timeoutMs) => {
    const doc = await client.getDocument(resolveKind(kindArg), name, { deadlineMs: timeoutMs });
    // A store without Events (or an older facade) leaves the section out rather than failing describe.
    const events = await client.listDocuments('Event', '', { deadlineMs: timeoutMs }).then((r) => eventsFor(r.items as unknown as Event[], doc), () => undefined);
    out(describeDocument(doc, Date.now()) + (events ? `\n${describeEvents(events, Date.now())}` : ''));
  }));

// ---------------------------------------------------------------------------------------------
// imperative VM actions

function vmKind(kind: string, command: string): void {
  if (resolveKind(kind) !== 'VirtualMachine') throw new N0Error('InvalidArgument', `${command} works on virtual machines only: n0ctl ${command} vm NAME`, 'kind');
}

function vmAction(command: string, rpc: string, past: string, withHard: boolean): void {
  const c = program.command(command)
    .description(`${command} a virtual machine (VirtualMachineService.${rpc})`)
    .argument('<kind>', 'vm')
    .argument('<name>', 'virtual machine name');
  if (withHard) c.option('--hard', command === 'shutdown' ? 'power off instead of an ACPI shutdown' : 'reset instead of an ACPI reboot');
  c.addHelpText('after', `
Examples:
  n0ctl ${command} vm test-vm${withHard ? `\n  n0ctl ${command} --hard vm test-vm` : ''}`);
  c.action((kind: string, name: string, opts: { hard?: boolean }) => withClient(async (client, timeoutMs) => {
    vmKind(kind, command);
    const req = withHard ? { name, hard: !!opts.hard } : { name };
    const stop = waitingLine(client, { kind: 'VirtualMachine', name });
    let vm: { state?: string };
    try {
      vm = await client.call<{ state?: string }>('VirtualMachineService', rpc, req, { deadlineMs: timeoutMs });
    } finally { stop(); }
    out(`virtualmachine/${name} ${past}${vm.state ? ` (state ${vm.state})` : ''}`);
  }));
}
vmAction('boot', 'BootVirtualMachine', 'booted', false);
vmAction('shutdown', 'ShutdownVirtualMachine', 'shut down', true);
vmAction('reboot', 'RebootVirtualMachine', 'rebooted', true);
vmAction('save', 'SaveVirtualMachine', 'saved', false);

program.command('console')
  .description('attach the terminal to a virtual machine\'s serial console (Ctrl-] leaves)')
  .argument('<kind>', 'vm')
  .argument('<name>', 'virtual machine name')
  .option('--vnc', 'print the VNC WebSocket URL instead of attaching')
  .option('--url', 'print the serial console URL instead of attaching')
  .addHelpText('after', `
Examples:
  n0ctl console vm test-vm
  n0ctl console vm test-vm --vnc     # open the URL with a noVNC client`)
  .action((kind: string, name: string, opts: { vnc?: boolean; url?: boolean }) => withClient(async (client, timeoutMs) => {
    vmKind(kind, 'console');
    const res = await client.call<{ console_url: string; expires_at: string }>('VirtualMachineService', 'OpenConsole', { name, vnc: !!opts.vnc }, { deadlineMs: timeoutMs });
    if (opts.vnc || opts.url) { out(res.console_url); if (res.expires_at) err(`valid until ${res.expires_at}`); return; }
    await attachConsole(res.console_url, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }, { ca: client.connection.ca ? fs.readFileSync(client.connection.ca) : undefined, token: client.connection.token });
  }));

program.addCommand(deployCommand({
  getVm: (name) => withClient((client, timeoutMs) => client.call('VirtualMachineService', 'GetVirtualMachine', { name }, { deadlineMs: timeoutMs })),
  parseDuration, out, err, fail: (code) => new ReportedFailure(code),
}));

// ---------------------------------------------------------------------------------------------
// config / completion

const config = program.command('config').description('show or change the client configuration (~/.n0stack/config or N0STACK_CONFIG)')
  .addHelpText('after', `
The file (written by "n0stack up"):
  current-context: default
  contexts:
    - {name: default, endpoint: 127.0.0.1:20180, token: ..., ca: /path/ca.pem}
Precedence: flags, then N0STACK_API_ENDPOINT (or the original n0cli's N0CLI_API_ENDPOINT) /
N0STACK_TOKEN, then the context.

Examples:
  n0ctl config view
  n0ctl config use-context lab`);
config.command('view')
  .description('print the configuration (tokens redacted) and where the current connection comes from')
  .addHelpText('after', '\nExamples:\n  n0ctl config view')
  .action(() => {
    const file = configPath();
    const cfg = loadConfig(file);
    const conn = resolveConnection(cfg, globals(), process.env);
    out(`# ${file}\n${YAML.stringify(redactedConfig(cfg)).trimEnd()}`);
    out(`# in effect: endpoint ${conn.endpoint} (from ${conn.sources.endpoint}), token ${conn.token ? `set (from ${conn.sources.token})` : 'none'}, TLS ${parseEndpoint(conn.endpoint).tls ? (conn.ca ? `verified with CA ${conn.ca}` : 'verified with the system roots') : 'off (http:// endpoint)'}`);
  });
config.command('use-context')
  .description('make a context the current one')
  .argument('<name>', 'context name')
  .addHelpText('after', '\nExamples:\n  n0ctl config use-context lab')
  .action((name: string) => { useContext(configPath(), name); out(`switched to context "${name}"`); });
config.command('current-context')
  .description('print the current context')
  .addHelpText('after', '\nExamples:\n  n0ctl config current-context')
  .action(() => { const c = loadConfig()['current-context']; if (!c) throw new N0Error('InvalidArgument', 'no current context set'); out(c); });

program.command('completion')
  .description('print a shell completion script')
  .argument('<shell>', 'bash or zsh')
  .addHelpText('after', '\nExamples:\n  source <(n0ctl completion bash)\n  n0ctl completion zsh > "${fpath[1]}/_n0ctl"')
  .action((shell: string) => {
    const model = completionModel(program, ['vm', 'bs', 'net', 'img', 'node', 'virtualmachines', 'blockstorages', 'networks', 'images', 'nodes'], OUTPUT_FORMATS.filter((f) => f !== 'table'));
    if (shell === 'bash') out(bashCompletion(model));
    else if (shell === 'zsh') out(zshCompletion(model));
    else throw new N0Error('InvalidArgument', `completion: shell must be bash or zsh, got "${shell}"`);
  });

// ---------------------------------------------------------------------------------------------

function reportError(e: unknown): number {
  if (e instanceof ReportedFailure) return e.exitCode;
  if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  if (e instanceof DagValidationError || e instanceof ManifestError) {
    const where = e instanceof DagValidationError && e.source ? `${e.source}: ` : '';
    err(`n0ctl: ${where}${e.problems.length} problem${e.problems.length > 1 ? 's' : ''}; nothing was run:`);
    for (const p of e.problems) err(`  ${p}`);
    return EXIT_USAGE;
  }
  if (e instanceof CallError) { err(`n0ctl: ${e.message}`); return EXIT_FAILURE; }
  if (e instanceof N0Error && e.code === 'InvalidArgument') { err(`n0ctl: ${e.message}`); return EXIT_USAGE; }
  err(`n0ctl: ${(e as Error).message ?? String(e)}`);
  return EXIT_FAILURE;
}

// The code decided so far, for when the reader goes away while it is being flushed.
let exitCode: number | undefined;
// `n0ctl ... | head`: the reader has what it wanted; end quietly, as ripgrep does.
onReaderGone(process.stdout, () => process.exit(exitCode ?? EXIT_OK), (e) => { err(`n0ctl: stdout: ${e.message}`); process.exit(EXIT_FAILURE); });
// Nowhere left to report a stderr failure; dying on it would only hide the real exit code.
onReaderGone(process.stderr, () => undefined);

program.exitOverride();
for (const c of program.commands) { c.exitOverride(); for (const s of c.commands) s.exitOverride(); }
program.parseAsync(process.argv).then(
  () => EXIT_OK,
  (e: unknown) => reportError(e),
).then((code) => { exitCode = code; return exitAfterFlush(code); });
