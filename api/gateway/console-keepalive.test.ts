// The hooks the gateway uses on the console server: it pings idle consoles (a browser cannot,
// and a console that drops when idle is kubevirt#6493), and hands plain HTTP to the gateway.
import * as http from 'node:http';
import { WebSocket } from 'ws';
import type { VirtualMachine } from '../types';
import { ConsoleProxy, type ConsoleStream } from '../server/console';

const vm = { metadata: { name: 'vm1' }, status: { node_name: 'host-a', state: 'RUNNING' } } as unknown as VirtualMachine;
const silent = async (): Promise<ConsoleStream> => ({ onData: () => undefined, onEnd: () => undefined, write: () => undefined, close: () => undefined });

describe('console server hooks', () => {
  let proxy: ConsoleProxy;
  afterEach(async () => { await proxy?.stop(); });

  it('pings an idle console, which stays open', async () => {
    proxy = new ConsoleProxy(silent, { listen: '127.0.0.1:0', pingIntervalMs: 50 });
    await proxy.start();
    const { console_url } = await proxy.issue(vm, 'serial');
    const ws = new WebSocket(console_url);
    let pings = 0;
    ws.on('ping', () => { pings++; });
    await new Promise((r) => ws.once('open', r));
    await new Promise((r) => setTimeout(r, 500));
    expect(pings).toBeGreaterThanOrEqual(4);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
  });

  it('serves plain HTTP requests with onRequest (the gateway), and 426 without it', async () => {
    proxy = new ConsoleProxy(silent, { listen: '127.0.0.1:0', onRequest: (_req, res) => { res.writeHead(200).end('gateway'); } });
    await proxy.start();
    const get = (port: number) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      }).on('error', reject);
    });
    expect(await get(proxy.listenPort)).toEqual({ status: 200, body: 'gateway' });
    await proxy.stop();
    proxy = new ConsoleProxy(silent, { listen: '127.0.0.1:0' });
    await proxy.start();
    expect((await get(proxy.listenPort)).status).toBe(426);
  });
});
