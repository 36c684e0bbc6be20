// OpenConsole: issues a short-lived signed URL, and serves it as a WebSocket that relays bytes
// both ways between the client and the VM's serial (or VNC) socket on its node's agent. A URL
// opens one console once: it may sit in a terminal's scrollback, a proxy's log or a browser's
// history, and a replay within its lifetime must not open the console again.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { WebSocketServer, type WebSocket } from 'ws';
import { FailedPreconditionError } from '../errors';
import { logger } from '../log';
import type { VirtualMachine } from '../types';
import type { ConsoleIssuer } from './context';

/** A VM's console byte stream, as an agent client provides it (api/ does not import agent/). */
export interface ConsoleStream {
  onData(listener: (chunk: Buffer) => void): void;
  onEnd(listener: (error?: Error) => void): void;
  write(chunk: Buffer): void;
  close(): void;
}

export type ConsoleOpener = (nodeName: string, vmName: string, kind: 'serial' | 'vnc') => Promise<ConsoleStream>;

interface Ticket { id: string; vm: string; node: string; kind: 'serial' | 'vnc'; exp: number }

export interface ConsoleProxyOptions {
  listen: string;
  /** Host in the URLs instead of the listen host. */
  publicHost?: string;
  /** scheme://host:port the URLs start with (behind a proxy or NAT), e.g. wss://console.example:443. */
  publicUrl?: string;
  ttlMs?: number;
  /**
   * Key that signs the tickets. Facade replicas behind one load balancer must share it, or a URL
   * issued by one fails at the other; omitted, a random per-process key.
   */
  secret?: Buffer;
  /** With it the consoles are served over TLS (wss://), with the facade's certificate. */
  tls?: { cert: Buffer; key: Buffer };
  /** Serves the plain HTTP requests (the REST gateway and web UI, api/gateway); without it they get 426. */
  onRequest?: http.RequestListener;
  /** Pings each console's client this often, so idle consoles survive proxies and NATs (default 20 s). */
  pingIntervalMs?: number;
}

export class ConsoleProxy implements ConsoleIssuer {
  private readonly secret: Buffer;
  private server?: http.Server | https.Server;
  private port = 0;
  private readonly log = logger('console');
  /** Ids of tickets already used, until they expire. */
  private readonly used = new Map<string, number>();

  constructor(private readonly open: ConsoleOpener, private readonly options: ConsoleProxyOptions) {
    this.secret = options.secret ?? randomBytes(32);
    if (options.publicUrl !== undefined && !/^wss?:\/\/[^/\s?#]+$/.test(options.publicUrl)) {
      throw new FailedPreconditionError(`console public URL ${JSON.stringify(options.publicUrl)} must be ws://host[:port] or wss://host[:port]`, 'console_public_url');
    }
  }

  /** The bound port (the listen port, or the one picked for port 0). */
  get listenPort(): number {
    return this.port;
  }

  async start(): Promise<number> {
    const [host, portText] = [this.options.listen.replace(/:\d+$/, ''), this.options.listen.split(':').pop()!];
    const refuse = this.options.onRequest ?? ((_req: http.IncomingMessage, res: http.ServerResponse): void => { res.writeHead(426).end('websocket only\n'); });
    this.server = this.options.tls ? https.createServer({ cert: this.options.tls.cert, key: this.options.tls.key }, refuse) : http.createServer(refuse);
    const wss = new WebSocketServer({ server: this.server, path: '/console' });
    wss.on('connection', (ws, req) => this.serve(ws, req).catch((err) => ws.close(1011, String(err.message).slice(0, 120))));
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(Number(portText), host, resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  async issue(vm: VirtualMachine, kind: 'serial' | 'vnc'): Promise<{ console_url: string; expires_at: string }> {
    const node = vm.status?.node_name;
    if (!node || vm.status?.state !== 'RUNNING' && vm.status?.state !== 'PAUSED') {
      throw new FailedPreconditionError(`VirtualMachine "${vm.metadata.name}" is ${vm.status?.state ?? 'PENDING'}; its console opens once it runs`);
    }
    const ticket: Ticket = { id: randomBytes(12).toString('base64url'), vm: vm.metadata.name, node, kind, exp: Date.now() + (this.options.ttlMs ?? 60_000) };
    const payload = Buffer.from(JSON.stringify(ticket)).toString('base64url');
    const token = `${payload}.${this.sign(payload)}`;
    const host = this.options.publicHost ?? this.options.listen.replace(/:\d+$/, '');
    const base = this.options.publicUrl ?? `${this.options.tls ? 'wss' : 'ws'}://${host}:${this.port}`;
    return { console_url: `${base}/console?token=${token}`, expires_at: new Date(ticket.exp).toISOString() };
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  private verify(token: string | null): Ticket {
    const [payload, signature] = (token ?? '').split('.');
    if (!payload || !signature) throw new Error('missing token');
    const expected = Buffer.from(this.sign(payload));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw new Error('bad token');
    const ticket = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Ticket;
    const now = Date.now();
    if (ticket.exp < now) throw new Error('token expired; call OpenConsole again');
    for (const [id, exp] of this.used) if (exp < now) this.used.delete(id);
    if (this.used.has(ticket.id)) throw new Error('token already used; call OpenConsole again');
    this.used.set(ticket.id, ticket.exp);
    return ticket;
  }

  private async serve(ws: WebSocket, req: http.IncomingMessage): Promise<void> {
    const ticket = this.verify(new URL(req.url ?? '', 'http://x').searchParams.get('token'));
    const stream = await this.open(ticket.node, ticket.vm, ticket.kind);
    this.log.info(`console of ${ticket.vm} (${ticket.kind}) opened`);
    stream.onData((chunk) => ws.send(chunk));
    stream.onEnd(() => ws.close(1000, 'console closed'));
    ws.on('message', (data: Buffer) => stream.write(Buffer.from(data)));
    // Browsers cannot send pings: the server's keep the connection busy while the console is idle.
    const ping = setInterval(() => ws.ping(), this.options.pingIntervalMs ?? 20_000);
    ws.on('close', () => { clearInterval(ping); stream.close(); });
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
