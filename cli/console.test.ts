// A real WebSocket server in this process stands in for the facade's console relay.
import { PassThrough } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { attachConsole, splitAtEscape } from './console';

describe('console', () => {
  let wss: WebSocketServer;
  let url: string;
  const received: Buffer[] = [];
  let pings = 0;
  let serverSide: WebSocket | undefined;
  const authorizations: (string | undefined)[] = [];

  beforeAll(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/console' });
    await new Promise((r) => wss.once('listening', r));
    url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}/console?ticket=t`;
    wss.on('connection', (ws, req) => {
      if (!req.url?.includes('ticket=t')) { ws.close(4001, 'bad ticket'); return; }
      authorizations.push(req.headers.authorization);
      serverSide = ws;
      ws.on('ping', () => pings++);
      ws.on('message', (d: Buffer) => { received.push(d); ws.send(Buffer.concat([Buffer.from('echo:'), d])); });
    });
  });
  afterAll(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }));

  it('splits input at Ctrl-]', () => {
    expect(splitAtEscape(Buffer.from('ab\x1dcd'))).toEqual({ send: Buffer.from('ab'), leave: true });
    expect(splitAtEscape(Buffer.from('abc'))).toEqual({ send: Buffer.from('abc'), leave: false });
  });

  it('relays both ways, pings, and leaves on Ctrl-] sending nothing after it', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let shown = '';
    stdout.on('data', (d) => { shown += d; });
    const done = attachConsole(url, { stdin, stdout, stderr }, { pingMs: 50, token: 'tok' });
    const until = async (pred: () => boolean) => { const end = Date.now() + 5000; while (!pred()) { if (Date.now() > end) throw new Error('timeout'); await new Promise((r) => setTimeout(r, 10)); } };
    await until(() => serverSide !== undefined);
    stdin.write('ls\r');
    await until(() => shown.includes('echo:ls\r'));
    await until(() => pings >= 2);
    stdin.write('x\x1dignored');
    await done;
    expect(Buffer.concat(received).toString()).toBe('ls\rx');
    // The token goes in the upgrade's header, never the URL.
    expect(authorizations).toEqual(['Bearer tok']);
  });

  it('fails with the server\'s reason when it closes abnormally', async () => {
    const stdin = new PassThrough();
    await expect(attachConsole(url.replace('ticket=t', 'ticket=bad'), { stdin, stdout: new PassThrough(), stderr: new PassThrough() }))
      .rejects.toThrow('console closed: 4001 bad ticket');
  });
});
