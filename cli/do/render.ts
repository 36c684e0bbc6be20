// How `n0ctl do` shows its tasks: a live list redrawn in place on a terminal, plain lines (one per
// finished task) in logs and pipes. The formatting is pure; only the two renderers write.
import type { Progress, TaskStatus } from './run';

export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) { value /= 1024; unit++; }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

/** "download 312 MiB / 1.00 GiB 30% 12.3 MiB/s ETA 58s"; without a total only bytes and rate. */
export function formatProgress(p: Progress): string {
  const parts = [...(p.phase ? [p.phase] : []), p.total > 0 ? `${formatBytes(p.done)} / ${formatBytes(p.total)} ${Math.floor((100 * p.done) / p.total)}%` : formatBytes(p.done)];
  if (p.rate !== undefined && p.rate > 0) {
    parts.push(`${formatBytes(Math.round(p.rate))}/s`);
    if (p.total > p.done) parts.push(`ETA ${formatDuration((1000 * (p.total - p.done)) / p.rate)}`);
  }
  return parts.join(' ');
}

/** Smooths a transfer rate from successive (time, bytes) samples. */
export class RateMeter {
  private last?: { t: number; bytes: number };
  private rate?: number;
  sample(t: number, bytes: number): number | undefined {
    if (this.last && t > this.last.t && bytes >= this.last.bytes) {
      const instant = ((bytes - this.last.bytes) * 1000) / (t - this.last.t);
      this.rate = this.rate === undefined ? instant : 0.7 * this.rate + 0.3 * instant;
    }
    this.last = { t, bytes };
    return this.rate;
  }
}

function elapsed(s: TaskStatus, now: number): string {
  if (s.startedAt === undefined) return '';
  return formatDuration((s.endedAt ?? now) - s.startedAt);
}

const PLAIN_TAG: Record<TaskStatus['state'], string> = {
  pending: 'pending', running: 'running', done: 'ok', failed: 'failed', ignored: 'ignored', skipped: 'skipped',
};

/** One line for logs: `[ok] ApplyNetwork 0.4s`, `[failed] X: NOT_FOUND: ...`. */
export function plainLine(s: TaskStatus, now: number): string {
  const tag = `[${PLAIN_TAG[s.state]}] ${s.name}`;
  switch (s.state) {
    case 'done': return `${tag} ${elapsed(s, now)}`;
    case 'failed': return `${tag}: ${s.error}`;
    case 'ignored': return `${tag}: ${s.error} (ignore_error)`;
    case 'skipped': return `${tag}: ${s.reason}`;
    case 'running': return `${tag}${s.progress ? ` ${formatProgress(s.progress)}` : ''}`;
    default: return tag;
  }
}

const SYMBOL: Record<TaskStatus['state'], string> = {
  pending: '\u00b7', running: '\u25b6', done: '\u2714', failed: '\u2716', ignored: '\u26a0', skipped: '\u21b7',
};
const COLOR: Record<TaskStatus['state'], string> = {
  pending: '\x1b[2m', running: '\x1b[36m', done: '\x1b[32m', failed: '\x1b[31m', ignored: '\x1b[33m', skipped: '\x1b[2m',
};

/** One row of the live list; `width` cuts long errors so a row never wraps (wrapping breaks redraws). */
export function liveLine(s: TaskStatus, now: number, width: number, color = true): string {
  const what = `${s.task.type}.${s.task.action}`;
  let detail = '';
  if (s.state === 'running') detail = s.progress ? formatProgress(s.progress) : s.message ?? '';
  else if (s.state === 'failed' || s.state === 'ignored') detail = s.error ?? '';
  else if (s.state === 'skipped') detail = s.reason ?? '';
  const time = elapsed(s, now);
  let line = `${SYMBOL[s.state]} ${s.name} (${what})${time ? ` ${time}` : ''}${detail ? ` ${detail}` : ''}`;
  if (line.length > width) line = `${line.slice(0, Math.max(0, width - 1))}\u2026`;
  return color ? `${COLOR[s.state]}${line}\x1b[0m` : line;
}

export interface Renderer {
  update(s: TaskStatus, all: Map<string, TaskStatus>): void;
  /** Final output; called once after the run. */
  finish(all: Map<string, TaskStatus>): void;
}

const percent = (p: Progress): number | undefined => (p.total > 0 ? Math.floor((100 * p.done) / p.total) : undefined);

/**
 * Prints a line when a task starts and when it ends; progress when it first shows, when its phase
 * changes, after a second when it moved by 10 points, and otherwise at most every 5 s: logs stay
 * short, yet a fetch of a few seconds shows how it went.
 */
export class PlainRenderer implements Renderer {
  private lastProgress = new Map<string, { t: number; phase?: string; percent?: number }>();
  private started = new Set<string>();
  constructor(private readonly out: NodeJS.WritableStream, private readonly now = Date.now) {}
  update(s: TaskStatus): void {
    if (s.state === 'pending') return;
    if (s.state === 'running') {
      if (!s.progress) {
        if (this.started.has(s.name)) return;
        this.started.add(s.name);
      } else {
        const t = this.now();
        const last = this.lastProgress.get(s.name);
        const pct = percent(s.progress);
        if (last && last.phase === s.progress.phase && t - last.t < 5000) {
          const moved = pct !== undefined && last.percent !== undefined && pct - last.percent >= 10;
          if (!moved || t - last.t < 1000) return;
        }
        this.lastProgress.set(s.name, { t, phase: s.progress.phase, percent: pct });
      }
    }
    this.out.write(`${plainLine(s, this.now())}\n`);
  }
  finish(): void { /* every line was printed as it happened */ }
}

/** Redraws the whole list in place ten times a second. */
export class LiveRenderer implements Renderer {
  private drawn = 0;
  private timer: NodeJS.Timeout;
  private all?: Map<string, TaskStatus>;
  constructor(private readonly out: NodeJS.WriteStream, private readonly now = Date.now) {
    this.timer = setInterval(() => this.draw(), 100);
    this.timer.unref();
  }
  update(_s: TaskStatus, all: Map<string, TaskStatus>): void { this.all = all; }
  private draw(): void {
    if (!this.all) return;
    const width = this.out.columns || 100;
    const lines = [...this.all.values()].map((s) => liveLine(s, this.now(), width));
    const up = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    this.out.write(`${up}\r\x1b[J${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }
  finish(all: Map<string, TaskStatus>): void {
    clearInterval(this.timer);
    this.all = all;
    this.draw();
  }
}

/**
 * `-o json`: the original n0cli's lines, `---> Task 'X' is started`, then `---> [ n/N ] Task 'X'
 * is finished` and the response as indented JSON (`response` renders it), or the failure in
 * grpc-go's words. Skipped tasks print nothing, as the original never started them.
 */
export class OriginalRenderer implements Renderer {
  private readonly started = new Set<string>();
  private finished = 0;
  constructor(private readonly out: NodeJS.WritableStream, private readonly total: number, private readonly response: (s: TaskStatus) => unknown) {}
  update(s: TaskStatus): void {
    if (s.state === 'running' && !this.started.has(s.name)) {
      this.started.add(s.name);
      this.out.write(`---> Task '${s.name}' is started\n`);
    } else if (s.state === 'done') {
      this.out.write(`---> [ ${++this.finished}/${this.total} ] Task '${s.name}' is finished\n${JSON.stringify(this.response(s), null, 2)}\n`);
    } else if (s.state === 'failed' || s.state === 'ignored') {
      this.out.write(`---> [ ${++this.finished}/${this.total} ] Task '${s.name}' is failed: got error response: ${s.error}${s.state === 'ignored' ? ' (ignore_error)' : ''}\n`);
    }
  }
  finish(): void { /* every line was printed as it happened */ }
}
