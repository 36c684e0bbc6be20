// Address management for networks: IPv4 from a CIDR (lowest free usable address), IPv6 (a requested
// address, or EUI-64 of the MAC in a /64), and MAC addresses. Pure: callers pass what they believe
// is taken (the network's NetworkAddress objects) and create the result's object with
// create-if-absent (api/addresses.ts), which is what keeps two NICs from getting one address.
import { createHash } from 'node:crypto';
import { FailedPreconditionError, InvalidArgumentError } from '../errors';

// ---------- IPv4 ----------

export interface IPv4Cidr {
  /** The network address as an unsigned 32-bit number. */
  network: number;
  prefix: number;
  /** Last address of the range (the broadcast address for prefixes up to /30). */
  broadcast: number;
  text: string;
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Returns the address as an unsigned 32-bit number, or undefined when it is not dotted-quad IPv4. */
export function parseIPv4(text: string): number | undefined {
  const m = V4.exec(typeof text === 'string' ? text : '');
  if (!m) return undefined;
  const octets = m.slice(1).map(Number);
  // Leading zeros are ambiguous (octal in some parsers), so "010.0.0.1" is rejected.
  if (octets.some((o, i) => o > 255 || (m[i + 1].length > 1 && m[i + 1].startsWith('0')))) return undefined;
  return ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function parseIPv4Cidr(text: string, field = 'ipv4_cidr'): IPv4Cidr {
  const bad = (why: string) => new InvalidArgumentError(`${field} ${JSON.stringify(text)} is invalid: ${why}`, field);
  if (typeof text !== 'string') throw bad('must be a string like 192.168.0.0/24');
  const slash = text.split('/');
  if (slash.length !== 2) throw bad('must be an address and a prefix length, like 192.168.0.0/24');
  const addr = parseIPv4(slash[0]);
  if (addr === undefined) throw bad(`${JSON.stringify(slash[0])} is not an IPv4 address`);
  if (!/^\d{1,2}$/.test(slash[1]) || Number(slash[1]) > 32) throw bad('prefix length must be 0..32');
  const prefix = Number(slash[1]);
  const mask = maskOf(prefix);
  const network = (addr & mask) >>> 0;
  if (network !== addr) throw bad(`host bits are set; the network is ${formatIPv4(network)}/${prefix}`);
  return { network, prefix, broadcast: (network | (~mask >>> 0)) >>> 0, text };
}

export function ipv4InCidr(addr: number, cidr: IPv4Cidr): boolean {
  return ((addr & maskOf(cidr.prefix)) >>> 0) === cidr.network;
}

function usableRange(cidr: IPv4Cidr): [number, number] {
  // /31 (RFC 3021) and /32 have no network/broadcast addresses to skip.
  if (cidr.prefix >= 31) return [cidr.network, cidr.broadcast];
  return [cidr.network + 1, cidr.broadcast - 1];
}

/** Usable host addresses in order: not the network, the broadcast or the gateway. */
export function* usableIPv4(cidr: IPv4Cidr, gateway?: string): Generator<string> {
  const gw = gateway === undefined ? undefined : parseIPv4(gateway);
  const [first, last] = usableRange(cidr);
  for (let a = first; a <= last; a++) if (a !== gw) yield formatIPv4(a);
}

/** The usable addresses not in `taken`, lowest first (an allocator that loses a race goes on to the next). */
export function* freeIPv4s(cidr: IPv4Cidr, gateway: string | undefined, taken: Taken): Generator<string> {
  for (const addr of usableIPv4(cidr, gateway)) if (holder(taken, addr) === false) yield addr;
}

export interface AllocateOptions {
  /** Network name, for messages. */
  network?: string;
  gateway?: string;
  /** Field of the requested address in the request, e.g. `nics[0].ipv4_address`. */
  field?: string;
}

/**
 * Taken addresses are a set, or a map from address to its holder (e.g. "vm1/0"), which then
 * appears in the conflict message.
 */
export type Taken = ReadonlySet<string> | ReadonlyMap<string, string>;

function holder(taken: Taken, addr: string): string | undefined | false {
  if (taken instanceof Map) return taken.has(addr) ? (taken.get(addr) ?? '') : false;
  return taken.has(addr) ? '' : false;
}

/** Returns the requested address if it is valid and free, else the lowest free usable address. */
export function allocateIPv4(cidrText: string, taken: Taken, requested?: string, options: AllocateOptions = {}): string {
  const cidr = parseIPv4Cidr(cidrText);
  const field = options.field ?? 'ipv4_address';
  const net = options.network ? `network ${options.network}` : `network ${cidrText}`;
  const gw = options.gateway === undefined ? undefined : parseIPv4(options.gateway);
  if (options.gateway !== undefined && gw === undefined) {
    throw new InvalidArgumentError(`gateway_ipv4 ${JSON.stringify(options.gateway)} is not an IPv4 address`, 'gateway_ipv4');
  }
  if (requested !== undefined && requested !== '') {
    const addr = parseIPv4(requested);
    if (addr === undefined) throw new InvalidArgumentError(`${field} ${JSON.stringify(requested)} is not an IPv4 address`, field);
    if (!ipv4InCidr(addr, cidr)) throw new InvalidArgumentError(`${field} ${requested} is outside ${net} (${cidrText})`, field);
    const [first, last] = usableRange(cidr);
    if (addr < first || addr > last) throw new InvalidArgumentError(`${field} ${requested} is the ${addr === cidr.network ? 'network' : 'broadcast'} address of ${net} (${cidrText})`, field);
    if (addr === gw) throw new InvalidArgumentError(`${field} ${requested} is the gateway of ${net}`, field);
    const who = holder(taken, formatIPv4(addr));
    if (who !== false) throw new FailedPreconditionError(`${field} ${requested} is already in use in ${net}${who ? ` by ${who}` : ''}`, field);
    return formatIPv4(addr);
  }
  for (const addr of freeIPv4s(cidr, options.gateway, taken)) return addr;
  throw new FailedPreconditionError(`${net} has no free IPv4 address (${cidrText})`);
}

// ---------- MAC ----------

const MAC = /^([0-9a-f]{2})([:-]?)([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;

/** Normalizes to lower-case colon form; InvalidArgumentError naming the field for anything else. */
export function validateMac(text: string, field = 'hardware_address'): string {
  const m = MAC.exec(typeof text === 'string' ? text : '');
  if (!m) throw new InvalidArgumentError(`${field} ${JSON.stringify(text)} is not a MAC address (like 02:00:00:12:34:56)`, field);
  const octets = [m[1], m[3], m[4], m[5], m[6], m[7]].map((o) => o.toLowerCase());
  const first = parseInt(octets[0], 16);
  if (first & 1) throw new InvalidArgumentError(`${field} ${text} is a multicast address; a NIC needs a unicast one (first octet even)`, field);
  if (octets.every((o) => o === '00')) throw new InvalidArgumentError(`${field} ${text} is the all-zero address`, field);
  return octets.join(':');
}

/**
 * A locally administered unicast MAC (first octet 02) derived from the seed, e.g.
 * "<network>/<vm>/<nic index>", so the same NIC gets the same MAC after a controller restart.
 * On a collision with a taken MAC it derives again with a counter.
 */
export function generateMac(seed: string, taken: ReadonlySet<string> = new Set()): string {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const digest = createHash('sha256').update(attempt === 0 ? seed : `${seed}#${attempt}`).digest();
    const mac = ['02', ...[...digest.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
    if (!taken.has(mac)) return mac;
  }
  // 2^40 addresses and a handful taken: reaching this means `taken` is not what it should be.
  throw new FailedPreconditionError(`could not derive a free MAC address for ${seed} in 1000 attempts`);
}

/** The requested MAC (validated, free) or a generated one. */
export function allocateMac(seed: string, taken: ReadonlySet<string>, requested?: string, field = 'hardware_address'): string {
  if (requested === undefined || requested === '') return generateMac(seed, taken);
  const mac = validateMac(requested, field);
  if (taken.has(mac)) throw new FailedPreconditionError(`${field} ${mac} is already in use on this network`, field);
  return mac;
}

// ---------- IPv6 ----------

export interface IPv6Cidr {
  network: bigint;
  prefix: number;
  text: string;
}

const MAX128 = (1n << 128n) - 1n;

/** Parses an IPv6 address (with :: and an embedded dotted IPv4 tail) into a 128-bit number. */
export function parseIPv6(text: string): bigint | undefined {
  if (typeof text !== 'string' || text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  let s = text;
  if (s.includes('.')) {
    // An embedded IPv4 tail (::ffff:192.0.2.1) stands for the last two groups.
    const lastColon = s.lastIndexOf(':');
    const v4 = parseIPv4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const parts = s.split('::');
  if (parts.length > 2) return undefined;
  const group = (p: string) => (p === '' ? [] : p.split(':'));
  const left = group(parts[0]);
  const right = parts.length === 2 ? group(parts[1]) : [];
  if ([...left, ...right].some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const count = left.length + right.length;
  if (parts.length === 1 ? count !== 8 : count > 7) return undefined;
  const groups = [...left, ...Array<string>(8 - count).fill('0'), ...right];
  return groups.reduce((acc: bigint, g: string) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (≥ 2) of zero groups as "::". */
export function formatIPv6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function parseIPv6Cidr(text: string, field = 'ipv6_cidr'): IPv6Cidr {
  const bad = (why: string) => new InvalidArgumentError(`${field} ${JSON.stringify(text)} is invalid: ${why}`, field);
  if (typeof text !== 'string') throw bad('must be a string like fd00:1::/64');
  const slash = text.split('/');
  if (slash.length !== 2) throw bad('must be an address and a prefix length, like fd00:1::/64');
  const addr = parseIPv6(slash[0]);
  if (addr === undefined) throw bad(`${JSON.stringify(slash[0])} is not an IPv6 address`);
  if (!/^\d{1,3}$/.test(slash[1]) || Number(slash[1]) > 128) throw bad('prefix length must be 0..128');
  const prefix = Number(slash[1]);
  const mask = prefix === 0 ? 0n : (MAX128 << BigInt(128 - prefix)) & MAX128;
  if ((addr & mask) !== addr) throw bad(`host bits are set; the network is ${formatIPv6(addr & mask)}/${prefix}`);
  return { network: addr, prefix, text };
}

function ipv6InCidr(addr: bigint, cidr: IPv6Cidr): boolean {
  const shift = BigInt(128 - cidr.prefix);
  return (addr >> shift) === (cidr.network >> shift);
}

/** Modified EUI-64 interface id of a MAC (RFC 4291 appendix A): U/L bit flipped, ff:fe inserted. */
export function eui64(mac: string): bigint {
  const octets = validateMac(mac).split(':').map((o) => parseInt(o, 16));
  const bytes = [octets[0] ^ 0x02, octets[1], octets[2], 0xff, 0xfe, octets[3], octets[4], octets[5]];
  return bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

export interface AllocateIPv6Options {
  network?: string;
  field?: string;
  /** The NIC's MAC, for the EUI-64 address when nothing is requested. */
  mac?: string;
}

/**
 * The requested address (valid, inside the CIDR, not the subnet-router anycast, free), or the
 * EUI-64 address of the MAC when the CIDR is a /64. Taken addresses must be in formatIPv6 form.
 */
export function allocateIPv6(cidrText: string, taken: Taken, requested?: string, options: AllocateIPv6Options = {}): string {
  const cidr = parseIPv6Cidr(cidrText);
  const field = options.field ?? 'ipv6_address';
  const net = options.network ? `network ${options.network}` : `network ${cidrText}`;
  let addr: bigint;
  if (requested !== undefined && requested !== '') {
    const parsed = parseIPv6(requested);
    if (parsed === undefined) throw new InvalidArgumentError(`${field} ${JSON.stringify(requested)} is not an IPv6 address`, field);
    if (!ipv6InCidr(parsed, cidr)) throw new InvalidArgumentError(`${field} ${requested} is outside ${net} (${cidrText})`, field);
    if (parsed === cidr.network && cidr.prefix < 127) throw new InvalidArgumentError(`${field} ${requested} is the subnet-router anycast address of ${net}`, field);
    addr = parsed;
  } else {
    if (cidr.prefix !== 64) throw new FailedPreconditionError(`${net} has ipv6_cidr ${cidrText}; automatic IPv6 addresses (EUI-64) need a /64, so request ${field} explicitly`, field);
    if (!options.mac) throw new FailedPreconditionError(`no MAC address to derive the EUI-64 IPv6 address from in ${net}`, field);
    addr = cidr.network | eui64(options.mac);
  }
  const text = formatIPv6(addr);
  const who = holder(taken, text);
  if (who !== false) throw new FailedPreconditionError(`${field} ${text} is already in use in ${net}${who ? ` by ${who}` : ''}`, field);
  return text;
}
