// The n0stack web UI: log-in, live lists of every kind, create/delete and power actions (each
// confirmed), and a VM page with its conditions and serial console. Plain DOM, no framework.
import '@xterm/xterm/css/xterm.css';
import './style.css';
import { ApiError, call, KINDS, LiveList, session, type Kind, type Message } from './api';
import { bytes, el, replace } from './dom';
import type { SerialConsole } from './terminal';
import type { VncConsole } from './vnc';

const app = document.getElementById('app')!;
const lists = Object.fromEntries(KINDS.map((k) => [k, new LiveList(k, () => schedule())])) as Record<Kind, LiveList>;
const flash = el('div', { class: 'flash', role: 'status', 'data-testid': 'flash' });

/** `kinds`: the streams the view needs. HTTP/1.1 gives a page 6 connections per host and each
 * open stream holds one, so route() closes the others (else fetches would queue behind them). */
interface View { root: HTMLElement; kinds: Kind[]; update(): void; leave?(): void }
let view: View | undefined;
let pending = false;

/** Re-renders at most once a frame, however many events arrive. */
function schedule(): void {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; view?.update(); });
}

function say(text: string, error = false): void {
  flash.textContent = text;
  flash.className = error ? 'flash error' : 'flash';
}

/** Asks, then does; the outcome goes to the flash line. */
async function act(question: string, what: () => Promise<unknown>, done: string): Promise<boolean> {
  if (!window.confirm(question)) return false;
  say(`${question.replace(/\?$/, '')}…`);
  try {
    await what();
    say(done);
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { showLogin('Your session has ended; log in again.'); return false; }
    say(err instanceof Error ? err.message : String(err), true);
    return false;
  }
}

const path = (kind: Kind, name: string, verb = '') => `/api/v0/${kind}/${encodeURIComponent(name)}${verb}`;
const state = (value: unknown) => el('span', { class: `state state-${String(value ?? '').toLowerCase()}` }, String(value ?? ''));
const button = (label: string, onclick: () => void, extra: Record<string, string> = {}) => el('button', { onclick, ...extra }, label);

function table(headers: string[], testid: string): { root: HTMLElement; body: HTMLTableSectionElement } {
  const body = el('tbody');
  return { root: el('table', { 'data-testid': testid }, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))), body), body };
}

function field(label: string, name: string, attrs: Record<string, string> = {}): HTMLElement {
  return el('label', {}, label, el('input', { name, ...attrs }));
}

function form(title: string, fields: HTMLElement[], submit: (data: Record<string, string>) => Promise<boolean>): HTMLElement {
  const f = el('form', { class: 'create', 'data-testid': `form-${title.toLowerCase().replace(/\s+/g, '-')}` }, el('strong', {}, title), fields, el('button', { type: 'submit' }, 'Create'));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = Object.fromEntries([...new FormData(f).entries()].map(([k, v]) => [k, String(v).trim()]));
    if (await submit(data)) f.reset();
  });
  return f;
}

const MiB = 1024 * 1024;

interface ListSpec {
  kind: Kind;
  title: string;
  headers: string[];
  row(item: Message): (Node | string)[];
  create?: HTMLElement;
  remove?: boolean;
}

function listView(spec: ListSpec): View {
  const t = table([...spec.headers, ...(spec.remove ? [''] : [])], `table-${spec.kind}`);
  const count = el('span', { class: 'count', 'data-testid': `count-${spec.kind}` });
  const root = el('section', {}, el('h2', {}, spec.title, ' ', count), spec.create, t.root);
  const live = lists[spec.kind];
  live.open();
  return {
    root,
    kinds: [spec.kind],
    update() {
      count.textContent = live.synced ? `(${live.items.size})` : '(loading)';
      replace(t.body, live.sorted().map((item) => el('tr', { 'data-name': item.name }, spec.row(item).map((c) => el('td', {}, c)),
        spec.remove ? el('td', {}, button('Delete', () => void act(`Delete ${spec.title.replace(/s$/, '').toLowerCase()} ${item.name}?`, () => call('DELETE', path(spec.kind, item.name)), `${item.name} deleted`), { class: 'danger' })) : undefined)));
    },
  };
}

const views: Record<string, () => View> = {
  nodes: () => listView({
    kind: 'node', title: 'Nodes', headers: ['name', 'state', 'address', 'CPU (milli)', 'memory', 'storage', 'accelerator', 'last heartbeat'],
    row: (n) => [n.name, state(n.exact_state || n.state), n.address, String(n.cpu_milli_cores), bytes(n.memory_bytes), bytes(n.storage_bytes), n.accelerator, n.last_heartbeat_time],
  }),
  networks: () => listView({
    kind: 'network', title: 'Networks', headers: ['name', 'state', 'IPv4', 'IPv6', 'domain', 'interfaces'], remove: true,
    row: (n) => [n.name, state(n.exact_state || n.state), n.ipv4_cidr, n.ipv6_cidr, n.domain, String(Object.keys(n.reserved_network_interfaces ?? {}).length)],
    create: form('New network', [field('name', 'name', { required: 'true' }), field('IPv4 CIDR', 'ipv4_cidr', { placeholder: '192.168.0.0/24' }), field('IPv6 CIDR', 'ipv6_cidr')],
      (d) => act(`Create network ${d.name}?`, () => call('PUT', path('network', d.name), { ipv4_cidr: d.ipv4_cidr, ipv6_cidr: d.ipv6_cidr }), `network ${d.name} created`)),
  }),
  block_storages: () => listView({
    kind: 'block_storage', title: 'Block storages', headers: ['name', 'state', 'request', 'limit', 'node'], remove: true,
    row: (b) => [b.name, state(b.exact_state || b.state), bytes(b.request_bytes), bytes(b.limit_bytes), b.node_name],
    create: form('New block storage', [field('name', 'name', { required: 'true' }), field('size (MiB)', 'size', { value: '1024', type: 'number', min: '1' }),
      field('fetch from URL (optional)', 'source_url', { placeholder: 'https://…/image.qcow2' }), field('copy of (optional)', 'source_block_storage')],
    (d) => {
      const size = String(Number(d.size) * MiB);
      const body: Record<string, unknown> = { name: d.name, request_bytes: size, limit_bytes: size };
      const [url, verb] = d.source_url ? ['/api/v0/block_storage:fetch', { source_url: d.source_url }] : d.source_block_storage ? ['/api/v0/block_storage:copy', { source_block_storage: d.source_block_storage }] : ['/api/v0/block_storage', {}];
      return act(`Create block storage ${d.name}?`, () => call('POST', url, { ...body, ...verb }), `block storage ${d.name} created`);
    }),
  }),
  images: () => listView({
    kind: 'image', title: 'Images', headers: ['name', 'registered block storages', 'tags'], remove: true,
    row: (i) => [i.name, (i.registered_block_storages ?? []).map((r: any) => r.block_storage_name).join(', '), Object.entries(i.tags ?? {}).map(([t, b]) => `${t}→${b}`).join(', ')],
    create: form('New image', [field('name', 'name', { required: 'true' })], (d) => act(`Create image ${d.name}?`, () => call('PUT', path('image', d.name), {}), `image ${d.name} created`)),
  }),
  vms: () => listView({
    kind: 'virtual_machine', title: 'Virtual machines', headers: ['name', 'state', 'node', 'CPU (milli)', 'memory', 'disks', 'addresses', 'power'], remove: true,
    row: (v) => [el('a', { href: `#/vm/${encodeURIComponent(v.name)}` }, v.name), state(v.exact_state || v.state), v.compute_node_name, `${v.request_cpu_milli_core}/${v.limit_cpu_milli_core}`,
      bytes(v.limit_memory_bytes), (v.block_storage_names ?? []).join(', '), (v.nics ?? []).map((n: any) => n.ipv4_address).filter(Boolean).join(', '), powerButtons(v.name)],
    create: form('New virtual machine', [field('name', 'name', { required: 'true' }), field('CPU cores', 'cores', { value: '1', type: 'number', min: '1' }),
      field('CPU request (milli)', 'cpu_request', { value: '100', type: 'number', min: '1' }),
      field('memory (MiB)', 'memory', { value: '256', type: 'number', min: '1' }), field('disks (comma separated)', 'disks', { required: 'true' }), field('network (optional)', 'network')],
    (d) => {
      const memory = String(Number(d.memory) * MiB);
      const body = {
        name: d.name, request_cpu_milli_core: Number(d.cpu_request), limit_cpu_milli_core: Number(d.cores) * 1000, request_memory_bytes: memory, limit_memory_bytes: memory,
        block_storage_names: d.disks.split(',').map((s) => s.trim()).filter(Boolean), nics: d.network ? [{ network_name: d.network }] : [],
      };
      return act(`Create virtual machine ${d.name}?`, () => call('POST', '/api/v0/virtual_machine', body), `virtual machine ${d.name} created`);
    }),
  }),
};

function powerButtons(name: string): HTMLElement {
  const power = (verb: 'boot' | 'reboot' | 'shutdown', label: string) => button(label, () => void act(`${label} ${name}?`, () => call('POST', path('virtual_machine', name, `:${verb}`), {}), `${name}: ${verb} done`), { 'data-action': verb });
  return el('span', { class: 'power' }, power('boot', 'Boot'), power('reboot', 'Reboot'), power('shutdown', 'Shut down'));
}

function vmView(name: string): View {
  const live = lists.virtual_machine;
  live.open();
  const details = el('dl', { class: 'details', 'data-testid': 'vm-details' });
  const conditions = table(['type', 'status', 'reason', 'message', 'since'], 'vm-conditions');
  const events = table(['type', 'reason', 'message', 'count', 'last seen'], 'vm-events');
  lists.event.open();
  let serial: SerialConsole | undefined;
  const consoleRoot = el('div');
  let vnc: VncConsole | undefined;
  const vncRoot = el('div');
  const openVnc = async () => {
    const { VncConsole } = await import('./vnc');
    vnc ??= new VncConsole(name);
    replace(vncRoot, vnc.root);
    await vnc.open();
  };
  const openConsole = async () => {
    const { SerialConsole } = await import('./terminal');
    serial ??= new SerialConsole(name);
    replace(consoleRoot, serial.root);
    await serial.open();
  };
  const root = el('section', {},
    el('h2', {}, el('a', { href: '#/vms' }, 'Virtual machines'), ' / ', name, ' ', el('span', { 'data-testid': 'vm-state' })),
    el('div', { class: 'actions' }, powerButtons(name),
      button('Open serial console', () => void openConsole().catch((err) => say(String((err as Error).message), true)), { 'data-action': 'console' }),
      button('Open VNC console', () => void openVnc().catch((err) => say(String((err as Error).message), true)), { 'data-action': 'vnc' }),
      button('Delete', () => void act(`Delete virtual machine ${name}?`, () => call('DELETE', path('virtual_machine', name)), `${name} deleted`).then((ok) => { if (ok) location.hash = '#/vms'; }), { class: 'danger' })),
    details, el('h3', {}, 'Conditions'), conditions.root, el('h3', {}, 'Events'), events.root, consoleRoot, vncRoot);
  return {
    root,
    kinds: ['virtual_machine', 'event'],
    leave: () => { serial?.close(); vnc?.close(); },
    update() {
      const vm = live.items.get(name);
      const stateEl = root.querySelector('[data-testid="vm-state"]')!;
      if (!vm) { replace(stateEl, live.synced ? state('DELETED') : ''); return; }
      replace(stateEl, state(vm.exact_state || vm.state));
      const rows: [string, string][] = [
        ['node', vm.compute_node_name], ['uuid', vm.uuid], ['CPU (milli)', `${vm.request_cpu_milli_core} / ${vm.limit_cpu_milli_core}`],
        ['memory', `${bytes(vm.request_memory_bytes)} / ${bytes(vm.limit_memory_bytes)}`], ['disks', (vm.block_storage_names ?? []).join(', ')],
        ['nics', (vm.nics ?? []).map((n: any) => `${n.network_name} ${n.hardware_address} ${n.ipv4_address}`).join('; ')],
      ];
      replace(details, rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v ?? '')]));
      const about = [...lists.event.items.values()].filter((e) => e.involvedObject?.kind === 'VirtualMachine' && e.involvedObject?.name === name);
      about.sort((a, b) => String(b.lastTimestamp).localeCompare(String(a.lastTimestamp)));
      replace(events.body, about.slice(0, 50).map((e) => el('tr', { class: e.type === 'Warning' ? 'warning' : '' }, [e.type, e.reason, e.message, e.count, e.lastTimestamp].map((x) => el('td', {}, String(x ?? ''))))));
      replace(conditions.body, (vm.conditions ?? []).map((c: any) => el('tr', {}, [c.type, c.status, c.reason, c.message, c.last_transition_time].map((x) => el('td', {}, String(x ?? ''))))));
    },
  };
}

const NAV: [string, string][] = [['nodes', 'Nodes'], ['networks', 'Networks'], ['block_storages', 'Block storages'], ['images', 'Images'], ['vms', 'VMs']];
const main = el('main');

function route(): void {
  view?.leave?.();
  const hash = location.hash.replace(/^#\/?/, '') || 'vms';
  const vm = /^vm\/(.+)$/.exec(hash);
  view = vm ? vmView(decodeURIComponent(vm[1])) : (views[hash] ?? views.vms)();
  for (const [kind, list] of Object.entries(lists)) if (!view.kinds.includes(kind as Kind)) list.close();
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('href') === `#/${hash}` || (!!vm && a.getAttribute('href') === '#/vms'));
  replace(main, view.root);
  view.update();
}

function showApp(): void {
  const nav = el('nav', {}, el('span', { class: 'brand' }, 'n0stack'), NAV.map(([h, label]) => el('a', { href: `#/${h}` }, label)),
    el('span', { class: 'who' }, `${session.role}`), button('Log out', () => void session.logout().finally(() => { for (const l of Object.values(lists)) l.close(); showLogin(); })));
  replace(app, nav, flash, main);
  window.onhashchange = route;
  route();
}

function showLogin(message = ''): void {
  view?.leave?.();
  view = undefined;
  window.onhashchange = null;
  for (const l of Object.values(lists)) l.close();
  const input = el('input', { type: 'password', name: 'token', autocomplete: 'off', placeholder: 'bearer token', required: true, 'data-testid': 'token' });
  const error = el('p', { class: 'error' }, message);
  const f = el('form', { class: 'login' }, el('h1', {}, 'n0stack'), el('p', {}, 'Log in with a token (the admin token is in <data-dir>/token; n0stack token create makes more).'), input, el('button', { type: 'submit' }, 'Log in'), error);
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await session.login(input.value);
      input.value = '';
      showApp();
    } catch (err) {
      error.textContent = err instanceof Error ? err.message : String(err);
    }
  });
  replace(app, f);
  input.focus();
}

// The current list's stream opens while the session is checked (both ride on the cookie): one round
// trip less before the first rows. Without a session it fails and showLogin closes it.
const HASH_KINDS: Record<string, Kind> = { nodes: 'node', networks: 'network', block_storages: 'block_storage', images: 'image', vms: 'virtual_machine' };
lists[HASH_KINDS[location.hash.replace(/^#\/?/, '')] ?? (location.hash.startsWith('#/vm/') || !location.hash ? 'virtual_machine' : 'node')].open();
session.restore().then((ok) => (ok ? showApp() : showLogin()), () => showLogin());
