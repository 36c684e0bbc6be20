// OpenConsole: issues a short-lived signed ticket in a URL, and serves it as a WebSocket that
// relays bytes both ways between the client and the VM's serial (or VNC) socket on its node's
// agent. A ticket names one VM and the caller who asked for it, and opens that console once: the
// URL may sit in a terminal's scrollback, a proxy's log or a browser's history, and a replay
// within its lifetime must not open the console again, at this replica or another. The key that
// signs tickets and the record of used ones are in the store (api/store/secrets.ts), so every
// facade replica verifies what another issued and refuses what another already let in. The URL
// carries the ticket only, never a bearer token.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { WebSocketServer, type WebSocket } from 'ws';
import { FailedPreconditionError } from '../errors';
import { logger } from '../log';
import type { VirtualMachine } from '../types';
import type { SecretStore } from '../store/secrets';
import { principalId, type Principal } from './auth';
import type { ConsoleIssuer } from './context';

/** A VM's console byte stream, as an agent client provides it (api/ does not import agent/). */
export interface ConsoleStream {
  onData(listener: (chunk: Buffer) => void): void;
  onEnd(listener: (error?: Error) => void): void;
  write(chunk: Buffer): void;
  close(): void;
}

export type ConsoleOpener = (nodeName: string, vmName: string, kind: 'serial' | 'vnc') => Promise<ConsoleStream>;

/** `user`: principalId of who asked for it (absent on a facade without authentication). */
interface Ticket { id: string; vm: string; node: string; kind: 'serial' | 'vnc'; user?: string; exp: number }

/** The name of the ticket key in the store's secret area. */
export const CONSOLE_KEY_NAME = 'console-ticket-key';
/** Used tickets' records past their time are deleted at most this often. */
const SWEEP_INTERVAL_MS = 60_000;

export interface ConsoleProxyOptions {
  listen: string;
  /** Host in the URLs instead of the listen host. */
  publicHost?: string;
  /** scheme://host:port the URLs start with (behind a proxy or NAT), e.g. wss://console.example:443. */
  publicUrl?: string;
  /** How long a ticket may wait to be used (default 30 s). */
  ttlMs?: number;
  /**
   * Where the ticket key and the used tickets are kept, shared by every facade replica (the
   * store's secret area). Without it (test doubles) a per-process key and memory, which a second
   * replica does not share.
   */
  secrets?: SecretStore;
  /** The ticket key instead of the store's (tests). */
  secret?: Buffer;
  /**
   * Who opens a console, when the upgrade request says (a bearer header, a session cookie):
   * someone other than the ticket's user is refused. Undefined: it carries only the ticket.
   */
  identify?: (req: http.IncomingMessage) => Principal | undefined;
  /** With it the consoles are served over TLS (wss://), with the facade's certificate. */
  tls?: { cert: Buffer; key: Buffer };
  /** Serves the plain HTTP requests (the REST gateway and web UI, api/gateway); without it they get 426. */
  onRequest?: http.RequestListener;
  /** Pings each console's client this often, so idle consoles survive proxies and NATs (default 20 s). */
  pingIntervalMs?: number;
}

export class ConsoleProxy implements ConsoleIssuer {
  private secret?: Buffer;
  private server?: http.Server | https.Server;
  private port = 0;
  private readonly log = logger('console');
  /** Used tickets' ids until they expire, when there is no store to keep them. */
  private readonly used = new Map<string, number>();
  private sweptAt = 0;

  constructor(private readonly open: ConsoleOpener, private readonly options: ConsoleProxyOptions) {
    if (options.publicUrl !== undefined && !/^wss?:\/\/[^/\s?#]+$/.test(options.publicUrl)) {
      throw new FailedPreconditionError(`console public URL ${JSON.stringify(options.publicUrl)} must be ws://host[:port] or wss://host[:port]`, 'console_public_url');
    }
  }

  /** The bound port (the listen port, or the one picked for port 0). */
  get listenPort(): number {
    return this.port;
  }

  async start(): Promise<number> {
    // The first replica to start makes the key; every other one loads it.
    this.secret = this.options.secret ?? await this.options.secrets?.ensureKey(CONSOLE_KEY_NAME) ?? randomBytes(32);
    const [host, portText] = [this.options.listen.replace(/:\d+$/, ''), this.options.listen.split(':').pop()!];
    const refuse = this.options.onRequest ?? ((_req: http.IncomingMessage, res: http.ServerResponse): void => { res.writeHead(426).end('websocket only\n'); });
    this.server = this.options.tls ? https.createServer({ cert: this.options.tls.cert, key: this.options.tls.key }, refuse) : http.createServer(refuse);
    const wss = new WebSocketServer({ server: this.server, path: '/console' });
    // 4003 (after HTTP's 403): the ticket is refused; 1011: the console itself could not open.
    const closeWith = (ws: WebSocket, code: number) => (err: Error) => ws.close(code, String(err.message).slice(0, 120));
    wss.on('connection', (ws, req) => {
      // What the client sends while its ticket is checked and the agent's stream opens (store and
      // agent round trips) is kept for the stream, not lost.
      const early: Buffer[] = [];
      const hold = (data: Buffer): void => { early.push(Buffer.from(data)); };
      ws.on('message', hold);
      this.verify(req).then((ticket) => this.serve(ws, ticket, () => { ws.off('message', hold); return early; }).catch(closeWith(ws, 1011)), closeWith(ws, 4003));
    });
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(Number(portText), host, resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  async issue(vm: VirtualMachine, kind: 'serial' | 'vnc', user?: Principal): Promise<{ console_url: string; expires_at: string }> {
    const node = vm.status?.node_name;
    if (!node || vm.status?.state !== 'RUNNING' && vm.status?.state !== 'PAUSED') {
      throw new FailedPreconditionError(`VirtualMachine "${vm.metadata.name}" is ${vm.status?.state ?? 'PENDING'}; its console opens once it runs`);
    }
    const ticket: Ticket = {
      id: randomBytes(16).toString('hex'), vm: vm.metadata.name, node, kind,
      ...(user ? { user: principalId(user) } : {}), exp: Date.now() + (this.options.ttlMs ?? 30_000),
    };
    const payload = Buffer.from(JSON.stringify(ticket)).toString('base64url');
    return { console_url: `${this.wsBase()}/console?ticket=${payload}.${this.sign(payload)}`, expires_at: new Date(ticket.exp).toISOString() };
  }

  httpBase(): string {
    return this.wsBase().replace(/^ws/, 'http');
  }

  /** ws(s)://host:port as clients reach this server: --console-public-url, else the listen host. */
  private wsBase(): string {
    const host = this.options.publicHost ?? this.options.listen.replace(/:\d+$/, '');
    return this.options.publicUrl ?? `${this.options.tls ? 'wss' : 'ws'}://${host}:${this.port}`;
  }

  private sign(payload: string): string {
    if (!this.secret) throw new FailedPreconditionError('the console relay has not started');
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  private async verify(req: http.IncomingMessage): Promise<Ticket> {
    const [payload, signature] = (new URL(req.url ?? '', 'http://x').searchParams.get('ticket') ?? '').split('.');
    if (!payload || !signature) throw new Error('missing ticket (call OpenConsole for a console URL)');
    const expected = Buffer.from(this.sign(payload));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw new Error('bad ticket');
    const ticket = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Ticket;
    if (ticket.exp < Date.now()) throw new Error('ticket expired; call OpenConsole again');
    // Before the ticket is spent: someone else's credentials must not burn it either.
    const caller = this.options.identify?.(req);
    if (caller && ticket.user !== undefined && principalId(caller) !== ticket.user) {
      throw new Error(`ticket was issued to ${ticket.user}, not ${principalId(caller)}`);
    }
    if (!await this.claim(ticket)) throw new Error('ticket already used; call OpenConsole again');
    return ticket;
  }

  /** Records the ticket as used; false when it was already (here or at another replica). */
  private async claim(ticket: Ticket): Promise<boolean> {
    const now = Date.now();
    const secrets = this.options.secrets;
    if (now - this.sweptAt > SWEEP_INTERVAL_MS) {
      this.sweptAt = now;
      if (secrets) secrets.sweep(now).catch((err) => this.log.warn(`sweeping used console tickets failed: ${(err as Error).message}`));
      else for (const [id, exp] of this.used) if (exp < now) this.used.delete(id);
    }
    if (secrets) return secrets.claim(ticket.id, ticket.exp);
    if (this.used.has(ticket.id)) return false;
    this.used.set(ticket.id, ticket.exp);
    return true;
  }

  private async serve(ws: WebSocket, ticket: Ticket, takeEarly: () => Buffer[]): Promise<void> {
    const stream = await this.open(ticket.node, ticket.vm, ticket.kind);
    this.log.info(`console of ${ticket.vm} (${ticket.kind}) opened${ticket.user ? ` by ${ticket.user}` : ''}`);
    stream.onData((chunk) => ws.send(chunk));
    stream.onEnd(() => ws.close(1000, 'console closed'));
    for (const chunk of takeEarly()) stream.write(chunk);
    ws.on('message', (data: Buffer) => stream.write(Buffer.from(data)));
    // Browsers cannot send pings: the server's keep the connection busy while the console is idle.
    const ping = setInterval(() => ws.ping(), this.options.pingIntervalMs ?? 20_000);
    ws.on('close', () => { clearInterval(ping); stream.close(); });
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Keep-alive connections of browsers and the gateway's clients would hold close() open.
    server.closeAllConnections();
    await closed;
  }
}
