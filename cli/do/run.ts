// Runs a validated DAG: every task starts as soon as all it depends on has finished well (or
// failed with ignore_error); a failure skips everything downstream of it. The RPC itself is
// injected, so the scheduling is plain logic.
import type { Dag, Task } from './dag';

export type TaskState = 'pending' | 'running' | 'done' | 'failed' | 'ignored' | 'skipped';

export interface Progress {
  done: number;
  total: number;
  /** bytes per second, smoothed by the caller */
  rate?: number;
  /** What the bytes count, when the work has several steps (the agent's fetch: download, convert). */
  phase?: string;
}

export interface TaskStatus {
  name: string;
  task: Task;
  state: TaskState;
  startedAt?: number;
  endedAt?: number;
  error?: string;
  /** Why a skipped task did not run. */
  reason?: string;
  progress?: Progress;
  /** The latest condition of the object the task waits on, so a slow step is never a silent one. */
  message?: string;
  result?: unknown;
}

export interface TaskContext {
  signal: AbortSignal;
  progress(p: Progress): void;
  /** What the object the task waits on says now (its latest condition). */
  status(message: string): void;
}

export type TaskCaller = (task: Task, ctx: TaskContext) => Promise<unknown>;

export interface RunOptions {
  /** At most this many calls at once (default 8). */
  concurrency?: number;
  signal?: AbortSignal;
  now?: () => number;
  onChange?: (status: TaskStatus, all: Map<string, TaskStatus>) => void;
  errorMessage?: (err: unknown) => string;
  /**
   * The original n0cli's behaviour: after the first failure (not ignore_error) start no new task;
   * the running ones finish, and every pending one is skipped.
   */
  failFast?: boolean;
}

export interface RunResult {
  statuses: Map<string, TaskStatus>;
  /** True when no task failed without ignore_error and nothing was cancelled. */
  ok: boolean;
}

export async function runDag(dag: Dag, call: TaskCaller, options: RunOptions = {}): Promise<RunResult> {
  const now = options.now ?? Date.now;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const describe = options.errorMessage ?? ((err: unknown) => (err instanceof Error ? err.message : String(err)));
  const statuses = new Map<string, TaskStatus>();
  for (const task of dag.values()) statuses.set(task.name, { name: task.name, task, state: 'pending' });
  const dependants = new Map<string, string[]>();
  for (const task of dag.values()) for (const dep of task.depends_on) (dependants.get(dep) ?? dependants.set(dep, []).get(dep)!).push(task.name);

  const changed = (s: TaskStatus): void => options.onChange?.(s, statuses);
  const finishedWell = (name: string): boolean => ['done', 'ignored'].includes(statuses.get(name)!.state);
  const skipDownstream = (name: string, reason: string): void => {
    for (const d of dependants.get(name) ?? []) {
      const s = statuses.get(d)!;
      if (s.state !== 'pending') continue;
      s.state = 'skipped';
      s.reason = reason;
      changed(s);
      skipDownstream(d, reason);
    }
  };

  let running = 0;
  let firstFailure: string | undefined;
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });

  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (controller.signal.aborted) {
        for (const s of statuses.values()) {
          if (s.state === 'pending') { s.state = 'skipped'; s.reason = 'cancelled'; changed(s); }
        }
      }
      if (firstFailure !== undefined && options.failFast) {
        for (const s of statuses.values()) {
          if (s.state === 'pending') { s.state = 'skipped'; s.reason = `--fail-fast: task "${firstFailure}" failed`; changed(s); }
        }
      }
      for (const s of statuses.values()) {
        if (running >= concurrency || controller.signal.aborted) break;
        if (s.state !== 'pending' || !s.task.depends_on.every(finishedWell)) continue;
        start(s);
      }
      if (running === 0) resolve();
    };
    const start = (s: TaskStatus): void => {
      running++;
      s.state = 'running';
      s.startedAt = now();
      changed(s);
      const ctx: TaskContext = {
        signal: controller.signal,
        progress: (p) => { if (s.state === 'running') { s.progress = p; changed(s); } },
        status: (message) => { if (s.state === 'running' && s.message !== message) { s.message = message; changed(s); } },
      };
      // A caller that throws synchronously must still settle the task.
      Promise.resolve().then(() => call(s.task, ctx)).then(
        (result) => { s.state = 'done'; s.result = result; },
        (err: unknown) => {
          s.error = describe(err);
          s.state = s.task.ignore_error ? 'ignored' : 'failed';
          if (s.state === 'failed') {
            firstFailure ??= s.name;
            skipDownstream(s.name, `dependency "${s.name}" failed`);
          }
        },
      ).finally(() => {
        s.endedAt = now();
        running--;
        changed(s);
        pump();
      });
    };
    pump();
  });
  options.signal?.removeEventListener('abort', onAbort);

  const ok = [...statuses.values()].every((s) => s.state === 'done' || s.state === 'ignored');
  return { statuses, ok };
}
