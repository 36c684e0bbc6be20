// The gateway's client: a cookie session (the token is sent once, at log-in, and never kept by
// the page), the CSRF token in memory for every mutating request, and live lists over SSE.
export interface Status { code: number; message: string }

export class ApiError extends Error {
  constructor(readonly status: number, readonly body: Status) { super(body.message || `HTTP ${status}`); }
}

let csrf = '';
let role = '';

export const session = {
  get role(): string { return role; },
  async restore(): Promise<boolean> {
    const res = await fetch('/api/v0/session', { credentials: 'same-origin' });
    if (!res.ok) return false;
    ({ csrf_token: csrf, role } = await res.json());
    return true;
  },
  async login(token: string): Promise<void> {
    const body = await call('POST', '/api/v0/session', { token });
    ({ csrf_token: csrf, role } = body as { csrf_token: string; role: string });
  },
  async logout(): Promise<void> {
    await call('DELETE', '/api/v0/session');
    csrf = '';
    role = '';
  },
};

export async function call<T = any>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const parsed = text ? JSON.parse(text) : {};
  if (!res.ok) throw new ApiError(res.status, parsed as Status);
  return parsed as T;
}

export type Kind = 'node' | 'network' | 'block_storage' | 'image' | 'virtual_machine' | 'event';
export const KINDS: Kind[] = ['node', 'network', 'block_storage', 'image', 'virtual_machine', 'event'];
export type Message = Record<string, any> & { name: string };
/** Messages are keyed by name; Events (Kubernetes-shaped documents) by metadata.name. */
const keyOf = (item: Record<string, any>): string => item.name ?? item.metadata?.name;

/** One kind's objects, kept current by the gateway's watch (the browser reconnects by itself). */
export class LiveList {
  readonly items = new Map<string, Message>();
  synced = false;
  private source?: EventSource;

  constructor(readonly kind: Kind, private readonly changed: () => void) {}

  open(): void {
    if (this.source) return;
    const source = new EventSource(`/api/v0/watch/${this.kind}`, { withCredentials: true });
    // A stream the gateway refuses (a store without Events) closes for good: nothing to show.
    source.addEventListener('sync', (e) => {
      const { items } = JSON.parse((e as MessageEvent).data) as { items: Message[] };
      this.items.clear();
      for (const item of items) this.items.set(keyOf(item), item);
      this.synced = true;
      performance.mark(`n0stack:synced:${this.kind}`);
      this.changed();
    });
    source.onmessage = (e) => {
      const { type, object } = JSON.parse(e.data) as { type: string; object: Message };
      if (type === 'DELETED') this.items.delete(keyOf(object));
      else this.items.set(keyOf(object), object);
      this.changed();
    };
    this.source = source;
  }

  close(): void {
    this.source?.close();
    this.source = undefined;
    this.synced = false;
  }

  sorted(): Message[] {
    return [...this.items.values()].sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  }
}
