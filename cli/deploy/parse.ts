// n0deploy files (the seed's accepted ADR): a Dockerfile-like list of RUN and COPY steps in an
// optional BOOTSTRAP section (once per VM) and a DEPLOY section (every run). Pure: no file system
// or network, so every rule here is unit-tested; cli/deploy/plan.ts checks the sources on disk.
import * as path from 'node:path';
import { N0Error } from '../../api/errors';

export type SectionName = 'BOOTSTRAP' | 'DEPLOY';

export interface RunStep {
  instruction: 'RUN';
  /** First line of the instruction in the file (1-based), for messages. */
  line: number;
  /** Shell command, run by /bin/sh -c on the VM. */
  command: string;
}

export interface CopyStep {
  instruction: 'COPY';
  line: number;
  /** Normalized, relative to the n0deploy file's folder ("." is the folder itself). */
  source: string;
  /** As written (a trailing "/" means "into this folder"); relative means relative to the login user's home. */
  destination: string;
}

export type Step = RunStep | CopyStep;

export interface Section { name: SectionName; line: number; steps: Step[] }

export interface N0deployFile { bootstrap?: Section; deploy: Section }

/** Every problem of a file at once, each naming its line; nothing was run. */
export class N0deployError extends N0Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super('InvalidArgument', `${file}: ${problems.length} problem${problems.length > 1 ? 's' : ''}; nothing was run:\n${problems.map((p) => `  ${p}`).join('\n')}`, '-f');
  }
}

const DOCKERFILE_ONLY = new Set(['FROM', 'WORKDIR', 'ENV', 'ARG', 'ADD', 'CMD', 'ENTRYPOINT', 'EXPOSE', 'USER', 'VOLUME', 'LABEL', 'SHELL', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'MAINTAINER']);
// A line ends in a continuation when its last non-blank character is a backslash (Dockerfile's rule).
const CONTINUATION = /\\[ \t]*$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** POSIX single-quoting: the one quoting every remote shell reads the same way. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Docker's exec form: a JSON array of strings, or undefined for anything else (then it is shell form). */
function jsonForm(rest: string): string[] | undefined {
  if (!rest.startsWith('[')) return undefined;
  try {
    const v: unknown = JSON.parse(rest);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
  } catch { return undefined; }
}

function describeChar(s: string): string {
  const c = CONTROL.exec(s)![0];
  return c === '\u0000' ? 'a NUL byte' : `the control character U+${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`;
}

/**
 * A COPY source, checked without the file system: relative to `baseDir` (the n0deploy file's
 * folder) and never leaving it. Symlinks are plan.ts's job. Returns the normalized relative path.
 */
export function checkSource(source: string, baseDir: string | undefined): { ok: string } | { problem: string } {
  if (source === '') return { problem: 'COPY source is empty' };
  if (CONTROL.test(source) || source.includes('\t')) return { problem: `COPY source ${JSON.stringify(source)} contains ${source.includes('\t') ? 'a tab' : describeChar(source)}` };
  if (/[*?[]/.test(source)) return { problem: `COPY source ${JSON.stringify(source)}: wildcards are not supported; name a file or a folder` };
  let relative: string;
  if (path.posix.isAbsolute(source)) {
    const base = baseDir ? path.posix.normalize(baseDir) : undefined;
    const rel = base ? path.posix.relative(base, path.posix.normalize(source)) : '..';
    if (rel === '..' || rel.startsWith('../') || path.posix.isAbsolute(rel)) {
      return { problem: `COPY source ${source} is outside the file's folder${base ? ` (${base})` : ''}: sources are relative to it` };
    }
    relative = rel === '' ? '.' : rel;
  } else {
    relative = path.posix.normalize(source);
    if (relative === '..' || relative.startsWith('../')) return { problem: `COPY source ${source} leaves the file's folder with ".."` };
  }
  relative = relative.replace(/\/+$/, '') || '.';
  return { ok: relative };
}

/** A COPY destination on the VM: any path the user means, but no control characters; "~/" is the home. */
export function checkDestination(destination: string): { ok: string } | { problem: string } {
  if (destination === '') return { problem: 'COPY destination is empty' };
  if (CONTROL.test(destination)) return { problem: `COPY destination ${JSON.stringify(destination)} contains ${describeChar(destination)}` };
  if (destination === '~' || destination === '~/') return { ok: './' };
  if (destination.startsWith('~') && !destination.startsWith('~/')) return { problem: `COPY destination ${destination}: only "~/" (the login user's home) is understood, not ~user` };
  return { ok: destination.startsWith('~/') ? destination.slice(2) : destination };
}

interface LogicalLine { line: number; text: string }

/** Joins continuation lines; comment and blank lines inside a continuation are dropped, as Docker does. */
function logicalLines(text: string, problems: string[]): LogicalLine[] {
  const raw = text.split(/\r?\n/);
  const lines: LogicalLine[] = [];
  let pending: LogicalLine | undefined;
  raw.forEach((content, i) => {
    const trimmed = content.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    if (CONTINUATION.test(content)) {
      const part = content.replace(CONTINUATION, '');
      pending = pending ? { line: pending.line, text: pending.text + part } : { line: i + 1, text: part };
      return;
    }
    lines.push(pending ? { line: pending.line, text: pending.text + content } : { line: i + 1, text: content });
    pending = undefined;
  });
  if (pending) {
    problems.push(`line ${pending.line}: the instruction ends with "\\" but no line follows it`);
    lines.push(pending);
  }
  return lines;
}

export function parseN0deploy(text: string, options: { file?: string; baseDir?: string } = {}): N0deployFile {
  const file = options.file ?? 'n0deploy';
  const problems: string[] = [];
  if (text.includes('\u0000')) throw new N0deployError(file, ['the file contains a NUL byte; n0deploy files are text']);
  const sections: Partial<Record<SectionName, Section>> = {};
  let current: Section | undefined;
  // Sections whose instructions were all refused are not also "empty": one message per mistake.
  const attempted = new Set<Section>();

  for (const { line, text: logical } of logicalLines(text, problems)) {
    const m = /^\s*(\S+)(?:\s+([\s\S]*))?$/.exec(logical)!;
    const word = m[1];
    const keyword = word.toUpperCase();
    const rest = (m[2] ?? '').trim();
    const at = `line ${line}`;

    if (keyword === 'BOOTSTRAP' || keyword === 'DEPLOY') {
      if (rest !== '' && !rest.startsWith('#')) problems.push(`${at}: ${keyword} takes no arguments, got ${JSON.stringify(rest)}`);
      const earlier = sections[keyword];
      if (earlier) problems.push(`${at}: a second ${keyword} section (the first is on line ${earlier.line})`);
      if (keyword === 'BOOTSTRAP' && sections.DEPLOY) problems.push(`${at}: BOOTSTRAP must come before DEPLOY (line ${sections.DEPLOY.line})`);
      current = { name: keyword, line, steps: [] };
      if (!earlier) sections[keyword] = current;
      continue;
    }
    if (keyword !== 'RUN' && keyword !== 'COPY') {
      problems.push(DOCKERFILE_ONLY.has(keyword)
        ? `${at}: ${keyword} is a Dockerfile instruction that n0deploy does not have (it has RUN and COPY)`
        : `${at}: unknown instruction ${JSON.stringify(word)} (n0deploy knows BOOTSTRAP, DEPLOY, RUN and COPY)`);
      continue;
    }
    if (!current) {
      problems.push(`${at}: ${keyword} comes before any section; start with BOOTSTRAP or DEPLOY`);
      continue;
    }

    attempted.add(current);
    if (keyword === 'RUN') {
      const argv = jsonForm(rest);
      const command = argv ? argv.map(shellQuote).join(' ') : rest;
      if (command === '') problems.push(`${at}: RUN needs a command`);
      else current.steps.push({ instruction: 'RUN', line, command });
      continue;
    }

    const args = jsonForm(rest) ?? (rest === '' ? [] : rest.split(/\s+/));
    if (args[0]?.startsWith('--')) {
      problems.push(`${at}: COPY options such as ${args[0].split('=')[0]} are not supported`);
      continue;
    }
    if (args.length !== 2) {
      problems.push(`${at}: COPY takes a source and a destination (COPY SRC DST), got ${args.length} argument${args.length === 1 ? '' : 's'}${args.length > 2 ? ' (a path with spaces needs the JSON form: COPY ["my file", "/dst"])' : ''}`);
      continue;
    }
    const source = checkSource(args[0], options.baseDir);
    const destination = checkDestination(args[1]);
    if ('problem' in source) problems.push(`${at}: ${source.problem}`);
    if ('problem' in destination) problems.push(`${at}: ${destination.problem}`);
    if ('ok' in source && 'ok' in destination) current.steps.push({ instruction: 'COPY', line, source: source.ok, destination: destination.ok });
  }

  if (!sections.DEPLOY) problems.push('no DEPLOY section: a file needs one (BOOTSTRAP is optional and comes first)');
  for (const s of Object.values(sections)) if (!attempted.has(s)) problems.push(`line ${s.line}: the ${s.name} section has no steps`);
  if (problems.length) throw new N0deployError(file, problems);
  return { bootstrap: sections.BOOTSTRAP, deploy: sections.DEPLOY! };
}

/** How a step reads in progress lines and errors: `RUN make install (line 7)`, on one line of at most `max`. */
export function describeStep(step: Step, max = 80): string {
  const body = step.instruction === 'RUN' ? step.command.replace(/\s+/g, ' ') : `${step.source} ${step.destination}`;
  return `${step.instruction} ${body.length > max ? `${body.slice(0, max - 1)}\u2026` : body} (line ${step.line})`;
}
