// Network driver on iproute2: one Linux bridge per Network, joined either to a VXLAN device whose
// all-zero FDB entries replicate broadcast/unknown traffic to every peer host (head-end
// replication, no multicast needed on the underlay), or to an 802.1q sub-interface of an uplink.
// The kernel is the only database: every call reads `ip -json` state and converges it.
import { isIP } from 'node:net';
import { FailedPreconditionError, InvalidArgumentError } from '../../api/errors';
import { logger } from '../../api/log';
import { validateName } from '../../api/names';
import { CommandError, run } from '../exec';
import { INTERFACE_PREFIX, vlanInterfaceName, vxlanName } from '../paths';
import type { NetworkDriver, NetworkSpecOnHost, NetworkState, NicSpec } from './types';

const log = logger('network');

export const VXLAN_PORT = 4789;
export const MAX_VNI = 0xffffff;
const ZERO_MAC = '00:00:00:00:00:00';
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
// Names under /run/netns; no '/' and no leading '.', so it cannot point elsewhere.
const NETNS = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

// ---------------------------------------------------------------------------------------------
// Pure parts: validation, parsing `ip -json` / `bridge -json` output, diffs.

export function validateNetnsName(netns: string): string {
  if (!NETNS.test(netns) || netns.includes('..')) {
    throw new InvalidArgumentError(`netns ${JSON.stringify(netns)} is not a valid network namespace name`, 'netns');
  }
  return netns;
}

/** A device name this driver manages: a valid interface name with the n0 prefix. */
export function validateManagedIfname(name: string, field: string): string {
  if (typeof name !== 'string' || !IFNAME.test(name) || !name.startsWith(INTERFACE_PREFIX)) {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(name)} must be an interface name of at most 15 characters starting with "${INTERFACE_PREFIX}"`, field);
  }
  return name;
}

export function validateIfname(name: string, field: string): string {
  if (typeof name !== 'string' || !IFNAME.test(name)) {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(name)} is not a valid interface name`, field);
  }
  return name;
}

/** Canonical text of an IP address (IPv6 lower case), or an InvalidArgumentError naming the field. */
export function normalizeIp(address: string, field: string): string {
  if (typeof address !== 'string' || isIP(address) === 0) {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(address)} is not an IP address`, field);
  }
  return address.toLowerCase();
}

export interface Cidr { address: string; prefixLength: number; family: 4 | 6 }

export function parseCidr(cidr: string, field: string): Cidr {
  const match = typeof cidr === 'string' ? /^([^/]+)\/(\d{1,3})$/.exec(cidr) : null;
  const family = match ? isIP(match[1]) : 0;
  const prefixLength = match ? Number(match[2]) : NaN;
  if (!match || family === 0 || prefixLength > (family === 4 ? 32 : 128)) {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(cidr)} must be an address with a prefix length, e.g. 192.168.0.1/24`, field);
  }
  return { address: match[1].toLowerCase(), prefixLength, family: family as 4 | 6 };
}

export interface ValidSpec {
  name: string;
  bridgeName: string;
  segmentId: number;
  peers: string[];
  gateway?: Cidr;
  vlan?: { uplink: string; vlanId: number; device: string };
}

/** Checks a NetworkSpecOnHost and normalises it (peers deduplicated, sorted, without ourselves). */
export function validateSpec(spec: NetworkSpecOnHost, underlayAddress?: string): ValidSpec {
  validateName(spec.name, 'network_name');
  const bridgeName = validateManagedIfname(spec.bridgeName, 'bridge_name');
  const vlan = spec.uplink !== undefined || spec.vlanId !== undefined;
  if (!vlan && (!Number.isInteger(spec.segmentId) || spec.segmentId < 1 || spec.segmentId > MAX_VNI)) {
    throw new InvalidArgumentError(`segment id ${spec.segmentId} must be an integer 1-${MAX_VNI}`, 'segment_id');
  }
  const self = underlayAddress?.toLowerCase();
  const peers = [...new Set((spec.peers ?? []).map((p, i) => normalizeIp(p, `peers[${i}]`)))].filter((p) => p !== self).sort();
  const result: ValidSpec = { name: spec.name, bridgeName, segmentId: spec.segmentId, peers };
  if (spec.gatewayCidr !== undefined && spec.gatewayCidr !== '') result.gateway = parseCidr(spec.gatewayCidr, 'gateway_cidr');
  if (vlan) {
    if (spec.uplink === undefined || spec.vlanId === undefined) {
      throw new InvalidArgumentError('a VLAN network needs both uplink and vlan_id', spec.uplink === undefined ? 'uplink' : 'vlan_id');
    }
    validateIfname(spec.uplink, 'uplink');
    result.vlan = { uplink: spec.uplink, vlanId: spec.vlanId, device: vlanInterfaceName(spec.uplink, spec.vlanId) };
  }
  return result;
}

/** What this driver needs to know about one link, from `ip -json -details link show`. */
export interface LinkInfo {
  name: string;
  kind?: string;
  master?: string;
  up: boolean;
  alias?: string;
  mtu?: number;
  /** Parent device (vlan's uplink) when the kernel reports one. */
  link?: string;
  vxlan?: { id: number; local?: string; port?: number; device?: string; learning?: boolean };
  vlan?: { id: number };
  /** tun/tap devices: the tun driver's mode. */
  tunType?: string;
  /** Present when read with `ip -json -details addr show`. */
  addresses?: AddressInfo[];
}

interface RawLink {
  ifname?: string;
  flags?: string[];
  master?: string;
  ifalias?: string;
  mtu?: number;
  link?: string | null;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: RawAddress[];
}

interface RawAddress { local?: string; prefixlen?: number; scope?: string }

function parseJsonArray(text: string, what: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (err) {
    throw new Error(`cannot parse ${what} JSON output: ${(err as Error).message}`);
  }
  if (!Array.isArray(value)) throw new Error(`${what} JSON output is not an array`);
  return value;
}

export function parseLinks(json: string): LinkInfo[] {
  return (parseJsonArray(json, 'ip link') as RawLink[]).filter((l) => typeof l.ifname === 'string').map((raw) => {
    const kind = raw.linkinfo?.info_kind;
    const data = raw.linkinfo?.info_data ?? {};
    const link: LinkInfo = { name: raw.ifname as string, kind, up: (raw.flags ?? []).includes('UP') };
    if (raw.master) link.master = raw.master;
    if (raw.ifalias) link.alias = raw.ifalias;
    if (typeof raw.mtu === 'number') link.mtu = raw.mtu;
    if (typeof raw.link === 'string') link.link = raw.link;
    if (kind === 'vxlan' && typeof data.id === 'number') {
      link.vxlan = {
        id: data.id,
        local: typeof data.local === 'string' ? data.local.toLowerCase() : undefined,
        port: typeof data.port === 'number' ? data.port : undefined,
        device: typeof data.link === 'string' ? data.link : undefined,
        learning: typeof data.learning === 'boolean' ? data.learning : undefined,
      };
    }
    if (kind === 'vlan' && typeof data.id === 'number') link.vlan = { id: data.id };
    if (kind === 'tun' && typeof data.type === 'string') link.tunType = data.type;
    if (Array.isArray(raw.addr_info)) link.addresses = toAddresses(raw.addr_info);
    return link;
  });
}

interface RawFdb { mac?: string; ifname?: string; dst?: string }

/** Unicast VXLAN peers per device: the all-zero MAC entries with a destination. */
export function parseFdbPeers(json: string): Map<string, string[]> {
  const peers = new Map<string, string[]>();
  for (const entry of parseJsonArray(json, 'bridge fdb') as RawFdb[]) {
    if (entry.mac !== ZERO_MAC || !entry.ifname || !entry.dst) continue;
    const list = peers.get(entry.ifname) ?? [];
    const dst = entry.dst.toLowerCase();
    if (!list.includes(dst)) list.push(dst);
    peers.set(entry.ifname, list);
  }
  for (const list of peers.values()) list.sort();
  return peers;
}

export function diffPeers(current: readonly string[], desired: readonly string[]): { add: string[]; remove: string[] } {
  const have = new Set(current);
  const want = new Set(desired);
  return { add: desired.filter((p) => !have.has(p)), remove: current.filter((p) => !want.has(p)) };
}

export interface AddressInfo { address: string; prefixLength: number; scope?: string }

function toAddresses(raw: RawAddress[]): AddressInfo[] {
  return raw.filter((a) => typeof a.local === 'string' && typeof a.prefixlen === 'number')
    .map((a) => ({ address: (a.local as string).toLowerCase(), prefixLength: a.prefixlen as number, scope: a.scope }));
}

/** Global addresses on the bridge other than the gateway are stale (link-local ones belong to the kernel). */
export function staleAddresses(current: readonly AddressInfo[], gateway?: Cidr): AddressInfo[] {
  return current.filter((a) => a.scope !== 'link' && a.scope !== 'host'
    && !(gateway && a.address === gateway.address && a.prefixLength === gateway.prefixLength));
}

/** Why an existing VXLAN device cannot be kept as it is (undefined when it matches). */
export function vxlanMismatch(link: LinkInfo, want: { id: number; local?: string; device?: string }): string | undefined {
  if (link.kind !== 'vxlan' || !link.vxlan) return `is a ${link.kind ?? 'plain'} device, not vxlan`;
  if (link.vxlan.id !== want.id) return `has id ${link.vxlan.id}, want ${want.id}`;
  if (link.vxlan.port !== undefined && link.vxlan.port !== VXLAN_PORT) return `has port ${link.vxlan.port}, want ${VXLAN_PORT}`;
  if (want.local && link.vxlan.local !== want.local) return `has local ${link.vxlan.local ?? 'none'}, want ${want.local}`;
  if (want.device && link.vxlan.device !== want.device) return `uses device ${link.vxlan.device ?? 'none'}, want ${want.device}`;
  if (link.vxlan.learning === true) return 'has learning on';
  return undefined;
}

/** The kernel could not make an 802.1q device (module absent or not built). */
export function isVlanUnsupported(stderr: string): boolean {
  return /Unknown device type|Operation not supported|EOPNOTSUPP|not supported/i.test(stderr);
}

function isMissing(err: unknown): boolean {
  return err instanceof CommandError && /Cannot find device|does not exist|No such device/i.test(err.stderr);
}

function isExisting(err: unknown): boolean {
  return err instanceof CommandError && /File exists|already exists|Device or resource busy/i.test(err.stderr);
}

/** Every n0 bridge with its overlay/underlay port, peers and taps. */
export function buildStates(links: readonly LinkInfo[], fdbPeers: ReadonlyMap<string, string[]>): NetworkState[] {
  return links
    .filter((l) => l.kind === 'bridge' && l.name.startsWith(INTERFACE_PREFIX))
    .map((bridge) => {
      const ports = links.filter((l) => l.master === bridge.name);
      const vx = ports.find((p) => p.kind === 'vxlan');
      const vl = ports.find((p) => p.kind === 'vlan');
      const state: NetworkState = {
        name: bridge.alias && nameOk(bridge.alias) ? bridge.alias : bridge.name,
        bridgeName: bridge.name,
        present: true,
        peers: vx ? [...(fdbPeers.get(vx.name) ?? [])] : [],
        taps: ports.filter((p) => p.kind === 'tun').map((p) => p.name).sort(),
      };
      const segmentId = vx?.vxlan?.id ?? vl?.vlan?.id;
      if (segmentId !== undefined) state.segmentId = segmentId;
      if (bridge.mtu !== undefined) state.mtu = bridge.mtu;
      return state;
    })
    .sort((a, b) => a.bridgeName.localeCompare(b.bridgeName));
}

function nameOk(name: string): boolean {
  try { validateName(name); return true; } catch { return false; }
}

// ---------------------------------------------------------------------------------------------
// Side effects.

export interface IprouteNetworkDriverOptions {
  /** Run every command in this network namespace (`ip -n`); unset = the agent's own namespace. */
  netns?: string;
  /** Local VXLAN endpoint address (`local`). */
  underlayAddress?: string;
  /** Underlay device VXLAN packets leave through (`dev`). */
  underlayDevice?: string;
  timeoutMs?: number;
}

export class IprouteNetworkDriver implements NetworkDriver {
  private readonly netns?: string;
  private readonly underlayAddress?: string;
  private readonly underlayDevice?: string;
  private readonly timeoutMs: number;
  // Mutations are serialised: two reconciles racing on one bridge would otherwise see each
  // other's half-made devices ("File exists", enslave before up).
  private queue: Promise<unknown> = Promise.resolve();
  // Counts commands that changed something, so an ensure that changed nothing answers from the
  // state it read first instead of reading it again.
  private mutations = 0;

  constructor(options: IprouteNetworkDriverOptions = {}) {
    if (options.netns !== undefined) this.netns = validateNetnsName(options.netns);
    if (options.underlayAddress !== undefined) this.underlayAddress = normalizeIp(options.underlayAddress, 'underlayAddress');
    if (options.underlayDevice !== undefined) this.underlayDevice = validateIfname(options.underlayDevice, 'underlayDevice');
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  async ensureNetwork(spec: NetworkSpecOnHost): Promise<NetworkState> {
    const valid = validateSpec(spec, this.underlayAddress);
    return this.serial(() => this.doEnsureNetwork(valid));
  }

  async deleteNetwork(bridgeName: string): Promise<void> {
    validateManagedIfname(bridgeName, 'bridge_name');
    return this.serial(() => this.doDeleteNetwork(bridgeName));
  }

  async ensureTap(nic: NicSpec): Promise<void> {
    validateManagedIfname(nic.tapName, 'tap_name');
    validateManagedIfname(nic.bridgeName, 'bridge_name');
    return this.serial(() => this.doEnsureTap(nic.tapName, nic.bridgeName));
  }

  async deleteTap(tapName: string): Promise<void> {
    validateManagedIfname(tapName, 'tap_name');
    return this.serial(async () => {
      const link = (await this.observe()).links.find((l) => l.name === tapName);
      if (!link) return;
      if (link.kind !== 'tun') throw new FailedPreconditionError(`${tapName} is a ${link.kind ?? 'plain'} device, not a tap; refusing to delete it`, 'tap_name');
      await this.ignoreMissing(this.ip(['link', 'del', 'dev', tapName]));
    });
  }

  async list(): Promise<NetworkState[]> {
    const { links, fdb } = await this.observe();
    return buildStates(links, fdb);
  }

  private async doEnsureNetwork(spec: ValidSpec): Promise<NetworkState> {
    const started = Date.now();
    const { links, fdb } = await this.observe();
    const mutationsBefore = this.mutations;
    // The VLAN device first: on a kernel without 802.1q the call fails before anything is made.
    const vlanBefore = spec.vlan ? await this.ensureVlanDevice(spec, links) : undefined;
    const bridge = links.find((l) => l.name === spec.bridgeName);
    if (bridge && bridge.kind !== 'bridge') {
      throw new FailedPreconditionError(`${spec.bridgeName} exists and is a ${bridge.kind ?? 'plain'} device, not a bridge`, 'bridge_name');
    }
    if (!bridge) await this.tolerateExisting(this.ip(['link', 'add', 'name', spec.bridgeName, 'type', 'bridge']));
    // The alias keeps the Network's name in the kernel, so list() can report it after a restart.
    if (bridge?.alias !== spec.name) await this.ip(['link', 'set', 'dev', spec.bridgeName, 'alias', spec.name]);
    if (!bridge?.up) await this.ip(['link', 'set', 'dev', spec.bridgeName, 'up']);

    const port = spec.vlan ? await this.attachVlanPort(spec, vlanBefore) : await this.ensureVxlanPort(spec, links, fdb);
    // A Network that switched between VXLAN and VLAN keeps no old port.
    for (const stale of links.filter((l) => l.master === spec.bridgeName && (l.kind === 'vxlan' || l.kind === 'vlan') && l.name !== port)) {
      log.info('removing stale port', { bridge: spec.bridgeName, port: stale.name });
      await this.ignoreMissing(this.ip(['link', 'del', 'dev', stale.name]));
    }
    await this.ensureGateway(spec, bridge?.addresses ?? []);
    const unchanged = this.mutations === mutationsBefore;
    const state = (unchanged ? buildStates(links, fdb) : await this.list()).find((s) => s.bridgeName === spec.bridgeName);
    if (!state) throw new FailedPreconditionError(`bridge ${spec.bridgeName} vanished while it was being set up`, 'bridge_name');
    log.debug('network ensured', { bridge: spec.bridgeName, ms: Date.now() - started, unchanged });
    return state;
  }

  private async ensureVxlanPort(spec: ValidSpec, links: LinkInfo[], fdb: Map<string, string[]>): Promise<string> {
    const name = vxlanName(spec.name);
    const existing = links.find((l) => l.name === name);
    const mismatch = existing && vxlanMismatch(existing, { id: spec.segmentId, local: this.underlayAddress, device: this.underlayDevice });
    if (existing && mismatch) {
      log.info('recreating vxlan device', { device: name, reason: mismatch });
      await this.ignoreMissing(this.ip(['link', 'del', 'dev', name]));
    }
    if (!existing || mismatch) {
      const args = ['link', 'add', 'name', name, 'type', 'vxlan', 'id', String(spec.segmentId), 'dstport', String(VXLAN_PORT)];
      if (this.underlayAddress) args.push('local', this.underlayAddress);
      if (this.underlayDevice) args.push('dev', this.underlayDevice);
      args.push('nolearning');
      try {
        await this.ip(args);
      } catch (err) {
        if (err instanceof CommandError && /VNI already exists/i.test(err.stderr)) {
          throw new FailedPreconditionError(`segment id ${spec.segmentId} is already used by another VXLAN device on this host (network ${spec.name})`, 'segment_id');
        }
        if (this.underlayDevice && isMissing(err)) {
          throw new FailedPreconditionError(`underlay device ${this.underlayDevice} does not exist on this host`, 'underlayDevice');
        }
        throw err;
      }
    }
    const after = existing && !mismatch ? existing : undefined;
    if (after?.master !== spec.bridgeName) await this.ip(['link', 'set', 'dev', name, 'master', spec.bridgeName]);
    if (!after?.up) await this.ip(['link', 'set', 'dev', name, 'up']);

    const current = mismatch || !existing ? [] : fdb.get(name) ?? [];
    const { add, remove } = diffPeers(current, spec.peers);
    for (const peer of add) await this.bridge(['fdb', 'append', ZERO_MAC, 'dev', name, 'dst', peer]);
    for (const peer of remove) {
      try {
        await this.bridge(['fdb', 'del', ZERO_MAC, 'dev', name, 'dst', peer]);
      } catch (err) {
        // Already gone (a concurrent agent or an operator removed it): the goal is reached.
        if (!(err instanceof CommandError && /RTNETLINK answers: No such file or directory/.test(err.stderr))) throw err;
      }
    }
    if (add.length || remove.length) log.info('vxlan peers updated', { device: name, add, remove });
    return name;
  }

  /** Creates the VLAN sub-interface if missing; returns its state before, undefined when just made. */
  private async ensureVlanDevice(spec: ValidSpec, links: LinkInfo[]): Promise<LinkInfo | undefined> {
    const { uplink, vlanId, device } = spec.vlan!;
    const existing = links.find((l) => l.name === device);
    if (existing && (existing.kind !== 'vlan' || existing.vlan?.id !== vlanId || (existing.link !== undefined && existing.link !== uplink))) {
      throw new FailedPreconditionError(`${device} exists but is not VLAN ${vlanId} of ${uplink}`, 'vlan_id');
    }
    if (existing && existing.master && existing.master !== spec.bridgeName) {
      throw new FailedPreconditionError(`${device} already belongs to bridge ${existing.master} (another Network with VLAN ${vlanId})`, 'vlan_id');
    }
    if (!existing) {
      try {
        await this.ip(['link', 'add', 'link', uplink, 'name', device, 'type', 'vlan', 'id', String(vlanId)]);
      } catch (err) {
        if (isMissing(err)) throw new FailedPreconditionError(`uplink interface ${uplink} does not exist on this host`, 'uplink');
        if (err instanceof CommandError && isVlanUnsupported(err.stderr)) {
          throw new FailedPreconditionError(
            `VLAN is not supported by this host's kernel (802.1q: ${err.stderr.trim()}); `
            + `use the VXLAN overlay instead (a Network without uplink/vlan_id) or load the 8021q module`, 'vlan_id');
        }
        throw err;
      }
    }
    return existing;
  }

  private async attachVlanPort(spec: ValidSpec, before: LinkInfo | undefined): Promise<string> {
    const device = spec.vlan!.device;
    if (before?.master !== spec.bridgeName) await this.ip(['link', 'set', 'dev', device, 'master', spec.bridgeName]);
    if (!before?.up) await this.ip(['link', 'set', 'dev', device, 'up']);
    return device;
  }

  private async ensureGateway(spec: ValidSpec, current: AddressInfo[]): Promise<void> {
    for (const stale of staleAddresses(current, spec.gateway)) {
      await this.ignoreMissing(this.ip(['addr', 'del', `${stale.address}/${stale.prefixLength}`, 'dev', spec.bridgeName]));
    }
    const gw = spec.gateway;
    if (gw && !current.some((a) => a.address === gw.address && a.prefixLength === gw.prefixLength)) {
      await this.ip(['addr', 'replace', `${gw.address}/${gw.prefixLength}`, 'dev', spec.bridgeName]);
    }
  }

  private async doDeleteNetwork(bridgeName: string): Promise<void> {
    const { links } = await this.observe();
    // Also the VXLAN device of a crash between its creation and its enslavement: same hash.
    const hash = /^n0br([0-9a-f]{8})$/.exec(bridgeName)?.[1];
    const ports = links.filter((l) => (l.master === bridgeName && (l.kind === 'vxlan' || l.kind === 'vlan'))
      || (hash !== undefined && l.name === `${INTERFACE_PREFIX}vx${hash}` && l.kind === 'vxlan'));
    for (const port of ports) await this.ignoreMissing(this.ip(['link', 'del', 'dev', port.name]));
    const bridge = links.find((l) => l.name === bridgeName);
    if (bridge && bridge.kind !== 'bridge') throw new FailedPreconditionError(`${bridgeName} is a ${bridge.kind ?? 'plain'} device, not a bridge; refusing to delete it`, 'bridge_name');
    if (bridge) await this.ignoreMissing(this.ip(['link', 'del', 'dev', bridgeName]));
  }

  private async doEnsureTap(tapName: string, bridgeName: string): Promise<void> {
    const { links } = await this.observe();
    const bridge = links.find((l) => l.name === bridgeName);
    if (!bridge || bridge.kind !== 'bridge') {
      throw new FailedPreconditionError(`bridge ${bridgeName} of the nic's network is not present on this host; ensure the network first`, 'bridge_name');
    }
    let tap = links.find((l) => l.name === tapName);
    if (tap && (tap.kind !== 'tun' || tap.tunType !== 'tap')) {
      throw new FailedPreconditionError(`${tapName} exists and is a ${tap.kind ?? 'plain'} device, not a tap`, 'tap_name');
    }
    if (!tap) {
      // vnet_hdr lets QEMU's virtio-net pass checksum/GSO offloads; QEMU opens the persistent tap by name.
      await this.tolerateExisting(this.ip(['tuntap', 'add', 'dev', tapName, 'mode', 'tap', 'vnet_hdr']));
      tap = undefined;
    }
    if (tap?.master !== bridgeName) {
      if (tap?.master) log.info('moving tap to another bridge', { tap: tapName, from: tap.master, to: bridgeName });
      await this.ip(['link', 'set', 'dev', tapName, 'master', bridgeName]);
    }
    if (!tap?.up) await this.ip(['link', 'set', 'dev', tapName, 'up']);
  }

  /** Links with their addresses, and VXLAN peers, read in one round. */
  private async observe(): Promise<{ links: LinkInfo[]; fdb: Map<string, string[]> }> {
    // `fdb show dev X` omits the ifname field the parser groups by, so read the whole table.
    const [addr, fdb] = await Promise.all([
      run('ip', this.withNetns(['-json', '-details', 'addr', 'show']), { timeoutMs: this.timeoutMs }),
      run('bridge', this.withNetns(['-json', 'fdb', 'show']), { timeoutMs: this.timeoutMs }),
    ]);
    return { links: parseLinks(addr.stdout), fdb: parseFdbPeers(fdb.stdout) };
  }

  private withNetns(args: string[]): string[] {
    return this.netns ? ['-n', this.netns, ...args] : args;
  }

  private ip(args: string[]) {
    this.mutations++;
    return run('ip', this.withNetns(args), { timeoutMs: this.timeoutMs });
  }

  private bridge(args: string[]) {
    this.mutations++;
    return run('bridge', this.withNetns(args), { timeoutMs: this.timeoutMs });
  }

  private async ignoreMissing(p: Promise<unknown>): Promise<void> {
    try { await p; } catch (err) { if (!isMissing(err)) throw err; }
  }

  private async tolerateExisting(p: Promise<unknown>): Promise<void> {
    try { await p; } catch (err) { if (!isExisting(err)) throw err; }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
