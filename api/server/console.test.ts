// The console relay on its own, in front of a fake console stream: a URL opens the console once,
// a replay or a forged ticket is refused, and with TLS the URL is wss:// and served over TLS.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { ensureCertBundle, readTlsMaterial } from '../pki';
import type { VirtualMachine } from '../types';
import { ConsoleProxy, type ConsoleStream } from './console';

const vm = { metadata: { name: 'vm1' }, status: { node_name: 'host-a', state: 'RUNNING' } } as unknown as VirtualMachine;

/** Echoes what it is sent, prefixed, so a round trip shows the relay works. */
function echo(opened: string[]): (node: string, name: string) => Promise<ConsoleStream> {
  return async (node, name) => {
    opened.push(`${node}/${name}`);
    let onData: (c: Buffer) => void = () => undefined;
    return {
      onData: (l) => { onData = l; },
      onEnd: () => undefined,
      write: (chunk) => onData(Buffer.concat([Buffer.from('echo:'), chunk])),
      close: () => undefined,
    };
  };
}

/** Opens the URL, sends "hi", resolves with the reply, or with the close reason if it is refused. */
function roundTrip(url: string, ca?: Buffer): Promise<{ reply?: string; closed?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ca ? { ca } : {});
    ws.on('open', () => ws.send(Buffer.from('hi')));
    ws.on('message', (d: Buffer) => { resolve({ reply: d.toString() }); ws.close(); });
    ws.on('close', (_code, reason) => resolve({ closed: reason.toString() }));
    ws.on('error', reject);
  });
}

describe('ConsoleProxy', () => {
  const proxies: ConsoleProxy[] = [];
  afterAll(async () => { for (const p of proxies) await p.stop(); });

  it('opens a console once per URL; a replay and a forged ticket are refused', async () => {
    const opened: string[] = [];
    const proxy = new ConsoleProxy(echo(opened), { listen: '127.0.0.1:0' });
    proxies.push(proxy);
    await proxy.start();
    const { console_url } = await proxy.issue(vm, 'serial');
    expect(console_url).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${proxy.listenPort}/console\\?ticket=`));
    expect(await roundTrip(console_url)).toEqual({ reply: 'echo:hi' });
    expect(await roundTrip(console_url)).toEqual({ closed: 'ticket already used; call OpenConsole again' });
    const [payload] = new URL(console_url).searchParams.get('ticket')!.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), vm: 'other-vm', id: 'x' })).toString('base64url');
    expect(await roundTrip(console_url.replace(payload, forged))).toEqual({ closed: 'bad ticket' });
    expect(opened).toEqual(['host-a/vm1']);
  });

  it('a URL issued by one replica opens at another that shares the key, not at one that does not', async () => {
    const secret = Buffer.alloc(32, 7);
    const [a, b, stranger] = [new ConsoleProxy(echo([]), { listen: '127.0.0.1:0', secret }), new ConsoleProxy(echo([]), { listen: '127.0.0.1:0', secret }), new ConsoleProxy(echo([]), { listen: '127.0.0.1:0' })];
    proxies.push(a, b, stranger);
    for (const p of [a, b, stranger]) await p.start();
    const url = (await a.issue(vm, 'serial')).console_url;
    const at = (p: ConsoleProxy): string => url.replace(`:${a.listenPort}/`, `:${p.listenPort}/`);
    expect(await roundTrip(at(stranger))).toEqual({ closed: 'bad ticket' });
    expect(await roundTrip(at(b))).toEqual({ reply: 'echo:hi' });
  });

  it('refuses an expired URL', async () => {
    const proxy = new ConsoleProxy(echo([]), { listen: '127.0.0.1:0', ttlMs: 1 });
    proxies.push(proxy);
    await proxy.start();
    const { console_url } = await proxy.issue(vm, 'serial');
    await new Promise((r) => setTimeout(r, 20));
    expect(await roundTrip(console_url)).toEqual({ closed: 'ticket expired; call OpenConsole again' });
  });

  it('with TLS serves wss://, and a public URL replaces scheme, host and port', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-console-'));
    try {
      ensureCertBundle(dir, { servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }] });
      const tls = readTlsMaterial(dir, 'facade');
      const proxy = new ConsoleProxy(echo([]), { listen: '127.0.0.1:0', tls: { cert: tls.cert, key: tls.key } });
      proxies.push(proxy);
      await proxy.start();
      const { console_url } = await proxy.issue(vm, 'serial');
      expect(console_url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/console\?ticket=/);
      expect(await roundTrip(console_url, tls.ca)).toEqual({ reply: 'echo:hi' });
      const behindProxy = new ConsoleProxy(echo([]), { listen: '127.0.0.1:0', publicUrl: 'wss://console.example:443' });
      proxies.push(behindProxy);
      await behindProxy.start();
      expect((await behindProxy.issue(vm, 'vnc')).console_url).toMatch(/^wss:\/\/console\.example:443\/console\?ticket=/);
      expect(() => new ConsoleProxy(echo([]), { listen: '127.0.0.1:0', publicUrl: 'https://x/y' })).toThrow('must be ws://host[:port] or wss://host[:port]');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
