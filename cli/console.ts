// `n0ctl console vm NAME`: the terminal joined to the VM's serial console over the facade's
// WebSocket relay. Ctrl-] leaves, as in telnet; a ping every 20 s keeps idle proxies from closing it.
import WebSocket from 'ws';

export const ESCAPE_BYTE = 0x1d; // Ctrl-]
export const PING_INTERVAL_MS = 20_000;

export interface ConsoleIO {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Splits input at the escape byte: what to send, and whether the user asked to leave. */
export function splitAtEscape(chunk: Buffer, escape = ESCAPE_BYTE): { send: Buffer; leave: boolean } {
  const i = chunk.indexOf(escape);
  return i < 0 ? { send: chunk, leave: false } : { send: chunk.subarray(0, i), leave: true };
}

/**
 * `ca`: the CA of the facade's certificate, for wss:// URLs (n0ctl passes the context's). `token`:
 * sent in the upgrade's Authorization header (never the URL), so the relay checks the ticket is
 * this user's.
 */
export function attachConsole(url: string, io: ConsoleIO, options: { pingMs?: number; connectTimeoutMs?: number; ca?: Buffer; token?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      handshakeTimeout: options.connectTimeoutMs ?? 15_000, ...(options.ca ? { ca: options.ca } : {}),
      ...(options.token ? { headers: { authorization: `Bearer ${options.token}` } } : {}),
    });
    let ping: NodeJS.Timeout | undefined;
    let raw = false;
    let settled = false;
    let leaving = false;
    const cleanup = (): void => {
      if (ping) clearInterval(ping);
      io.stdin.removeListener('data', onInput);
      io.stdin.pause();
      if (raw) io.stdin.setRawMode?.(false);
    };
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      cleanup();
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate();
      if (err) reject(err); else resolve();
    };
    const onInput = (data: Buffer | string): void => {
      if (leaving) return;
      const { send, leave } = splitAtEscape(Buffer.isBuffer(data) ? data : Buffer.from(data));
      if (send.length && ws.readyState === WebSocket.OPEN) ws.send(send);
      if (leave && !leaving) {
        leaving = true;
        io.stderr.write('\r\n[n0ctl] console closed\r\n');
        // A clean close flushes what was typed before Ctrl-]; a dead server must not hold us.
        ws.close(1000);
        setTimeout(() => finish(), 1000).unref();
      }
    };
    ws.on('open', () => {
      io.stderr.write(`[n0ctl] connected; escape character is '^]'\r\n`);
      if (io.stdin.isTTY && io.stdin.setRawMode) { io.stdin.setRawMode(true); raw = true; }
      io.stdin.on('data', onInput);
      io.stdin.resume();
      ping = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.ping(); }, options.pingMs ?? PING_INTERVAL_MS);
    });
    ws.on('message', (data: Buffer) => io.stdout.write(data));
    ws.on('unexpected-response', (_req, res) => finish(new Error(`console refused: HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trim())));
    ws.on('close', (code, reason) => {
      if (leaving) finish();
      else if (!settled) {
        if (code === 1000 || code === 1005) io.stderr.write('\r\n[n0ctl] console closed by the server\r\n');
        finish(code === 1000 || code === 1005 ? undefined : new Error(`console closed: ${code} ${reason.toString()}`.trim()));
      }
    });
    ws.on('error', (err) => finish(new Error(`console: ${err.message}`)));
  });
}
