// Test helper: a VM's serial console over its unix socket. Keeps everything the guest printed so
// a test can wait for text that appears after a given point (e.g. the ready marker after a reboot).
import * as net from 'node:net';
import { DeadlineExceededError, UnavailableError } from '../../../api/errors';

export class SerialConsole {
  private text = '';
  private waiters = new Set<() => void>();
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => { this.text += chunk; this.wake(); });
    socket.on('close', () => { this.closed = true; this.wake(); });
    socket.on('error', () => undefined);
  }

  /** Connects, retrying until the socket exists and accepts, up to timeoutMs. */
  static async connect(socketPath: string, timeoutMs = 10_000): Promise<SerialConsole> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      try {
        const socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection({ path: socketPath });
          s.once('connect', () => { s.off('error', reject); resolve(s); });
          s.once('error', reject);
        });
        return new SerialConsole(socket);
      } catch (err) {
        last = (err as Error).message;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new UnavailableError(`serial console ${socketPath}: ${last || 'not reachable'} after ${timeoutMs} ms`);
  }

  private wake(): void { for (const w of this.waiters) w(); }

  /** Everything received so far. */
  get output(): string { return this.text; }
  /** Offset to pass to waitFor so only later output counts. */
  get mark(): number { return this.text.length; }

  /** Resolves with the output offset just past the first match at or after `from`. */
  waitFor(pattern: string | RegExp, timeoutMs: number, from = 0): Promise<number> {
    const find = (): number | undefined => {
      const tail = this.text.slice(from);
      if (typeof pattern === 'string') {
        const i = tail.indexOf(pattern);
        return i < 0 ? undefined : from + i + pattern.length;
      }
      const m = pattern.exec(tail);
      return m ? from + m.index + m[0].length : undefined;
    };
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const at = find();
        if (at !== undefined) { cleanup(); resolve(at); return; }
        if (this.closed) { cleanup(); reject(new UnavailableError(`serial console closed before ${String(pattern)} appeared; last output: ${this.text.slice(-500)}`)); }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new DeadlineExceededError(`${String(pattern)} did not appear on the serial console within ${timeoutMs} ms; last output: ${this.text.slice(-500)}`));
      }, timeoutMs);
      const cleanup = (): void => { clearTimeout(timer); this.waiters.delete(check); };
      this.waiters.add(check);
      check();
    });
  }

  write(text: string): void { this.socket.write(text); }

  close(): void { this.socket.destroy(); }
}
