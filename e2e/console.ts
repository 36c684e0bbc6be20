// A VM's serial console through the facade's OpenConsole URL (a WebSocket), driven like a
// person at a terminal: wait for text, type a command, read its exit code.
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';

export interface CommandResult { code: number; output: string }

export class SerialConsole {
  /** Everything received so far, carriage returns removed. */
  text = '';
  private closed = false;
  private readonly waiters = new Set<() => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.text += data.toString('utf8').replace(/\r/g, '');
      for (const w of [...this.waiters]) w();
    });
    ws.on('close', () => { this.closed = true; for (const w of [...this.waiters]) w(); });
  }

  /** `ca`: the CA of the facade's certificate, for wss:// URLs. */
  static open(url: string, timeoutMs = 15_000, ca?: Buffer): Promise<SerialConsole> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, ca ? { ca } : {});
      const timer = setTimeout(() => { ws.terminate(); reject(new Error(`console ${url.replace(/ticket=.*/, 'ticket=…')} did not open within ${timeoutMs} ms`)); }, timeoutMs);
      ws.once('open', () => { clearTimeout(timer); resolve(new SerialConsole(ws)); });
      ws.once('error', (err) => { clearTimeout(timer); reject(err); });
    });
  }

  /** The offset to search from for output that comes after now. */
  get mark(): number { return this.text.length; }

  send(text: string): void {
    if (!this.closed) this.ws.send(Buffer.from(text));
  }

  /** Resolves with the first match of `pattern` in the text after `from`, or rejects at the deadline. */
  waitFor(pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = pattern.exec(this.text.slice(from));
        if (m) { done(); resolve(m); return true; }
        if (this.closed) { done(); reject(new Error(`console closed before ${pattern}; last output: ${JSON.stringify(this.text.slice(-600))}`)); return true; }
        return false;
      };
      const timer = setTimeout(() => { done(); reject(new Error(`no ${pattern} on the console within ${timeoutMs} ms; last output: ${JSON.stringify(this.text.slice(-600))}`)); }, timeoutMs);
      const waiter = () => { check(); };
      const done = () => { clearTimeout(timer); this.waiters.delete(waiter); };
      this.waiters.add(waiter);
      check();
    });
  }

  /**
   * Types `command` into the guest's shell and resolves with its exit code and what it printed.
   * The end marker is computed by the shell ($?), so the echo of the typed line cannot match it.
   */
  async run(command: string, timeoutMs = 30_000): Promise<CommandResult> {
    if (/[\n\r]/.test(command)) throw new Error('one command line, please');
    const id = randomBytes(4).toString('hex');
    const from = this.mark;
    this.send(`echo N0BEGIN-${id}-$((1)); ${command}; echo N0RC-${id}-$?\n`);
    const begin = await this.waitFor(new RegExp(`N0BEGIN-${id}-1\\n`), timeoutMs, from);
    const start = from + begin.index + begin[0].length;
    const end = await this.waitFor(new RegExp(`N0RC-${id}-(\\d+)`), timeoutMs, start);
    return { code: Number(end[1]), output: this.text.slice(start, start + end.index) };
  }

  /**
   * Waits until the guest's shell answers (it starts once the guest's cloud-init is done), nudging
   * it with a harmless command every few seconds, since boot output before we connected is lost.
   */
  async waitShell(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const id = randomBytes(4).toString('hex');
    const from = this.mark;
    while (Date.now() < deadline) {
      this.send(`echo N0UP-${id}-$((6*7))\n`);
      try {
        await this.waitFor(new RegExp(`N0UP-${id}-42`), Math.min(5000, Math.max(1, deadline - Date.now())), from);
        return;
      } catch (err) {
        if (this.closed) throw err;
      }
    }
    throw new Error(`the guest's shell did not answer within ${timeoutMs} ms; last output: ${JSON.stringify(this.text.slice(-600))}`);
  }

  close(): void {
    this.closed = true;
    this.ws.terminate();
  }
}
