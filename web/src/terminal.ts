// Loaded on demand (xterm.js is most of the UI's bytes); its CSS comes with the main bundle.
// The serial console in the browser: xterm.js on the OpenConsole WebSocket relay. The server
// pings the connection (api/server/console.ts), so an idle console stays up.
import { Terminal } from '@xterm/xterm';
import { call } from './api';
import { el, replace } from './dom';

export class SerialConsole {
  private term?: Terminal;
  private ws?: WebSocket;
  readonly root = el('div', { class: 'console' });
  private readonly status = el('span', { class: 'console-status', 'data-testid': 'console-status' }, 'closed');

  constructor(private readonly vm: string) {}

  async open(): Promise<void> {
    this.close();
    const screen = el('div', { class: 'terminal', 'data-testid': 'terminal' });
    replace(this.root, el('div', { class: 'console-bar' }, 'Serial console ', this.status, ' ', el('button', { onclick: () => this.close() }, 'Close')), screen);
    const term = new Terminal({ convertEol: false, fontSize: 14, rows: 24, cols: 80, scrollback: 2000 });
    term.open(screen);
    this.term = term;
    this.setStatus('connecting');
    const { console_url } = await call<{ console_url: string }>('POST', `/api/v0/virtual_machine/${encodeURIComponent(this.vm)}:open_console`, {});
    const ws = new WebSocket(console_url);
    ws.binaryType = 'arraybuffer';
    const encoder = new TextEncoder();
    ws.onopen = () => { this.setStatus('connected'); term.focus(); ws.send(encoder.encode('\r')); };
    ws.onmessage = (e) => term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data as ArrayBuffer));
    ws.onclose = (e) => this.setStatus(`closed${e.reason ? `: ${e.reason}` : ''}`);
    term.onData((data) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data)); });
    this.ws = ws;
  }

  private setStatus(text: string): void {
    this.status.textContent = text;
  }

  close(): void {
    this.ws?.close();
    this.ws = undefined;
    this.term?.dispose();
    this.term = undefined;
    replace(this.root);
  }
}
