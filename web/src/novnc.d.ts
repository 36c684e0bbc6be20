// The part of noVNC's RFB client (@novnc/novnc, no bundled types) the UI uses.
declare module '@novnc/novnc' {
  export default class RFB extends EventTarget {
    constructor(target: HTMLElement, url: string, options?: { wsProtocols?: string[]; shared?: boolean });
    scaleViewport: boolean;
    resizeSession: boolean;
    disconnect(): void;
  }
}
