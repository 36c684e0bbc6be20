// The VNC console in the browser: noVNC's RFB client on the OpenConsole WebSocket relay (vnc:
// true), loaded on demand like xterm.js. The server pings the relay, so an idle console stays up.
import RFB from '@novnc/novnc';
import { call } from './api';
import { el, replace } from './dom';

export class VncConsole {
  private rfb?: RFB;
  readonly root = el('div', { class: 'console' });
  private readonly status = el('span', { class: 'console-status', 'data-testid': 'vnc-status' }, 'closed');

  constructor(private readonly vm: string) {}

  async open(): Promise<void> {
    this.close();
    const screen = el('div', { class: 'vnc-screen', 'data-testid': 'vnc-screen' });
    replace(this.root, el('div', { class: 'console-bar' }, 'VNC console ', this.status, ' ', el('button', { onclick: () => this.close() }, 'Close')), screen);
    this.status.textContent = 'connecting';
    const { console_url } = await call<{ console_url: string }>('POST', `/api/v0/virtual_machine/${encodeURIComponent(this.vm)}:open_console`, { vnc: true });
    // No subprotocol: the relay answers none, and a browser that asked for one would fail the handshake.
    const rfb = new RFB(screen, console_url, { wsProtocols: [] });
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', () => { this.status.textContent = 'connected'; });
    rfb.addEventListener('disconnect', () => { this.status.textContent = 'closed'; });
    this.rfb = rfb;
  }

  close(): void {
    this.rfb?.disconnect();
    this.rfb = undefined;
    replace(this.root);
  }
}
