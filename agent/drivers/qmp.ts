// A small QMP client over QEMU's unix socket. QEMU serves one QMP client at a time per socket, so
// callers connect, run a few commands and close; nothing here outlives one operation, which keeps
// the driver free of in-memory state (a restarted agent simply connects again).
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { DeadlineExceededError, N0Error, UnavailableError } from '../../api/errors';

export type QmpMessage =
  | { kind: 'greeting'; version?: unknown; capabilities: string[] }
  | { kind: 'return'; id?: string; value: unknown }
  | { kind: 'error'; id?: string; errorClass: string; desc: string }
  | { kind: 'event'; event: string; data: Record<string, unknown>; timestamp?: { seconds: number; microseconds: number } }
  | { kind: 'unknown'; raw: unknown };

/** Splits buffered socket text into complete lines (QMP ends each JSON object with CRLF). */
export function splitQmpLines(buffer: string): { lines: string[]; rest: string } {
  const parts = buffer.split('\n');
  const rest = parts.pop() ?? '';
  return { lines: parts.map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== ''), rest };
}

/** Classifies one parsed QMP JSON object. */
export function classifyQmpMessage(raw: unknown): QmpMessage {
  if (raw === null || typeof raw !== 'object') return { kind: 'unknown', raw };
  const o = raw as Record<string, unknown>;
  const id = typeof o.id === 'string' ? o.id : undefined;
  if (o.QMP && typeof o.QMP === 'object') {
    const q = o.QMP as Record<string, unknown>;
    return { kind: 'greeting', version: q.version, capabilities: Array.isArray(q.capabilities) ? q.capabilities.map(String) : [] };
  }
  if ('return' in o) return { kind: 'return', id, value: o.return };
  if (o.error && typeof o.error === 'object') {
    const e = o.error as Record<string, unknown>;
    return { kind: 'error', id, errorClass: String(e.class ?? 'GenericError'), desc: String(e.desc ?? '') };
  }
  if (typeof o.event === 'string') {
    return {
      kind: 'event',
      event: o.event,
      data: (o.data && typeof o.data === 'object' ? o.data : {}) as Record<string, unknown>,
      timestamp: o.timestamp as { seconds: number; microseconds: number } | undefined,
    };
  }
  return { kind: 'unknown', raw };
}

/** Serializes one command; `id` lets replies be matched even if QEMU interleaves events. */
export function encodeQmpCommand(execute: string, args: Record<string, unknown> | undefined, id: string): string {
  return `${JSON.stringify(args && Object.keys(args).length ? { execute, arguments: args, id } : { execute, id })}\r\n`;
}

/** QEMU refused a command (e.g. `cont` on a guest that has shut down). */
export class QmpCommandError extends N0Error {
  constructor(readonly command: string, readonly errorClass: string, readonly desc: string) {
    super('FailedPrecondition', `QMP ${command} failed: ${errorClass}: ${desc}`, 'qmp');
  }
}

export const QMP_EVENTS = ['SHUTDOWN', 'RESET', 'STOP', 'RESUME', 'POWERDOWN'] as const;

export interface QmpConnectOptions {
  /** Deadline for connecting, the greeting and capabilities negotiation (default 5 s). */
  timeoutMs?: number;
  /** Default per-command deadline (default 10 s). */
  commandTimeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Emits 'event' (QmpMessage of kind event) for every event, and the event's name
 * ('SHUTDOWN', 'STOP', ...) with its data; 'close' when the socket closes.
 */
export class QmpClient extends EventEmitter {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  greeting?: Extract<QmpMessage, { kind: 'greeting' }>;

  private constructor(private readonly socket: net.Socket, private readonly commandTimeoutMs: number) {
    super();
  }

  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? 5_000;
    const socket = net.createConnection({ path: socketPath });
    const client = new QmpClient(socket, options.commandTimeoutMs ?? 10_000);
    try {
      await client.handshake(socketPath, timeoutMs);
      return client;
    } catch (err) {
      client.close();
      throw err;
    }
  }

  private handshake(socketPath: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new DeadlineExceededError(`QMP ${socketPath}: no greeting within ${timeoutMs} ms (another client may hold the socket)`)), timeoutMs);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        reject(new UnavailableError(`QMP ${socketPath}: ${err.message}`));
      };
      this.socket.once('error', fail);
      this.socket.setEncoding('utf8');
      this.socket.on('data', (chunk: string) => this.onData(chunk));
      this.socket.on('close', () => this.onClose());
      this.once('greeting', () => {
        this.execute('qmp_capabilities', undefined, timeoutMs).then(() => {
          clearTimeout(timer);
          this.socket.off('error', fail);
          // Later socket errors surface as rejected commands through onClose.
          this.socket.on('error', () => undefined);
          resolve();
        }, (err: Error) => { clearTimeout(timer); reject(err); });
      });
      this.once('close', () => { clearTimeout(timer); reject(new UnavailableError(`QMP ${socketPath}: closed before the greeting`)); });
    });
  }

  private onData(chunk: string): void {
    const { lines, rest } = splitQmpLines(this.buffer + chunk);
    this.buffer = rest;
    for (const line of lines) {
      let parsed: unknown;
      try { parsed = JSON.parse(line); } catch { continue; }
      const msg = classifyQmpMessage(parsed);
      if (msg.kind === 'greeting') {
        this.greeting = msg;
        this.emit('greeting', msg);
      } else if (msg.kind === 'return' || msg.kind === 'error') {
        const p = msg.id ? this.pending.get(msg.id) : undefined;
        if (!p || !msg.id) continue;
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.kind === 'return') p.resolve(msg.value);
        else p.reject(new QmpCommandError(p.command, msg.errorClass, msg.desc));
      } else if (msg.kind === 'event') {
        this.emit('event', msg);
        this.emit(msg.event, msg.data);
      }
    }
  }

  private onClose(): void {
    if (this.closed && this.pending.size === 0) { this.emit('close'); return; }
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new UnavailableError(`QMP connection closed while waiting for ${p.command}`));
      this.pending.delete(id);
    }
    this.emit('close');
  }

  /** Runs one command and resolves with its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.commandTimeoutMs): Promise<T> {
    if (this.closed) return Promise.reject(new UnavailableError(`QMP connection is closed; cannot run ${command}`));
    const id = `n0-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DeadlineExceededError(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(encodeQmpCommand(command, args, id));
    });
  }

  /** Resolves with the event's data when `event` arrives, or rejects at the deadline. */
  waitForEvent(event: string, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const onEvent = (data: Record<string, unknown>): void => { cleanup(); resolve(data); };
      const onClose = (): void => { cleanup(); reject(new UnavailableError(`QMP connection closed while waiting for ${event}`)); };
      const timer = setTimeout(() => { cleanup(); reject(new DeadlineExceededError(`QMP event ${event} did not arrive within ${timeoutMs} ms`)); }, timeoutMs);
      const cleanup = (): void => { clearTimeout(timer); this.off(event, onEvent); this.off('close', onClose); };
      this.on(event, onEvent);
      this.once('close', onClose);
    });
  }

  get isClosed(): boolean { return this.closed; }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
  }
}

/** Connects, runs `fn`, and always closes, so the one QMP slot is freed for the next caller. */
export async function withQmp<T>(socketPath: string, fn: (qmp: QmpClient) => Promise<T>, options?: QmpConnectOptions): Promise<T> {
  const qmp = await QmpClient.connect(socketPath, options);
  try {
    return await fn(qmp);
  } finally {
    qmp.close();
  }
}
