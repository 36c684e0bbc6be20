// cloud-init NoCloud seed: meta-data, user-data and network-config rendered from plain objects
// with the yaml package (never by pasting user input into text), packed in-process (iso9660.ts,
// the layout genisoimage -joliet -rock writes) into an ISO labelled "cidata" that the guest's
// cloud-init finds on its CD-ROM.
import { renameSync, writeFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import YAML from 'yaml';
import { InvalidArgumentError } from '../../api/errors';
import { logger } from '../../api/log';
import { SHA512_CRYPT_PATTERN } from '../../api/logic/password';
import { removeQuietly, requireAbsolutePath, tempPathBeside } from './fsutil';
import { buildIso9660 } from './iso9660';
import type { CloudInitDriver, CloudInitSpec, NicSpec } from './types';

const log = logger('cloudinit');

/** cloud-init reads YAML with PyYAML, i.e. YAML 1.1: `yes`, `on`, `1:20` and MAC addresses are
 * not strings there unless quoted. Rendering with the 1.1 schema quotes every such string. */
export function toYaml(value: unknown): string {
  return YAML.stringify(value, { version: '1.1', lineWidth: 0 });
}

export function parseYaml(text: string): unknown {
  return YAML.parse(text, { version: '1.1' });
}

const USERNAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HOST_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** Reserved by the distros (root and daemon accounts); giving them our sudo rule is a mistake. */
const RESERVED_USERS = new Set(['root', 'daemon', 'bin', 'sys', 'nobody']);

/** A hostname for a VM name: names allow '_' (the seed's `debug_ipv6`), hostnames do not. */
export function hostnameFor(vmName: string): string {
  const host = vmName.toLowerCase().replace(/_/g, '-').split('.').map((l) => l.slice(0, 63).replace(/^-+|-+$/g, '')).filter(Boolean).join('.');
  return host.slice(0, 253).replace(/[.-]+$/, '') || 'localhost';
}

function invalid(field: string, message: string): never {
  throw new InvalidArgumentError(`${field} ${message}`, field);
}

/** Validates everything that reaches the guest; fields are named as in the VirtualMachine spec. */
export function validateCloudInitSpec(spec: CloudInitSpec): void {
  if (typeof spec.instanceId !== 'string' || !INSTANCE_ID.test(spec.instanceId)) invalid('uuid', `${JSON.stringify(spec.instanceId)} is not a valid instance id`);
  const host = spec.hostname;
  if (typeof host !== 'string' || host.length > 253 || !host.split('.').every((l) => HOST_LABEL.test(l))) {
    invalid('hostname', `${JSON.stringify(host)} is not a valid hostname (lower-case letters, digits, '-', labels of at most 63 characters)`);
  }
  if (spec.loginUsername !== undefined) {
    if (!USERNAME.test(spec.loginUsername)) invalid('login_username', `${JSON.stringify(spec.loginUsername)} must match ${USERNAME.source}`);
    if (RESERVED_USERS.has(spec.loginUsername)) invalid('login_username', `${JSON.stringify(spec.loginUsername)} is a reserved system account`);
  }
  if (spec.loginPassword !== undefined) {
    if (typeof spec.loginPassword !== 'string' || spec.loginPassword.length === 0 || spec.loginPassword.length > 256) invalid('login_password', 'must be 1-256 characters');
    // chpasswd takes one "user:password" per line: a line break would set another account's password.
    if (/[\x00-\x1f\x7f]/.test(spec.loginPassword)) invalid('login_password', 'must not contain control characters or line breaks');
  }
  if (spec.loginPasswordHash !== undefined && (typeof spec.loginPasswordHash !== 'string' || !SHA512_CRYPT_PATTERN.test(spec.loginPasswordHash))) {
    invalid('login_password_hash', 'must be a SHA-512 crypt hash ($6$salt$...)');
  }
  if (!Array.isArray(spec.sshAuthorizedKeys)) invalid('ssh_authorized_keys', 'must be a list');
  spec.sshAuthorizedKeys.forEach((key, i) => {
    // One key is one authorized_keys line; a line break would smuggle in a second entry.
    if (typeof key !== 'string' || key.trim().length === 0) invalid('ssh_authorized_keys', `[${i}] must be a non-empty string`);
    if (/[\x00-\x1f\x7f]/.test(key)) invalid('ssh_authorized_keys', `[${i}] must be one line without control characters`);
  });
  const macs = new Set<string>();
  spec.nics.forEach((nic, i) => validateNic(nic, i, macs));
}

function validateNic(nic: NicSpec, i: number, macs: Set<string>): void {
  const f = `nics[${i}]`;
  const mac = typeof nic.hardwareAddress === 'string' ? nic.hardwareAddress.toLowerCase() : '';
  if (!MAC.test(mac)) invalid('nics', `${f}.hardware_address ${JSON.stringify(nic.hardwareAddress)} is not a MAC address`);
  if (macs.has(mac)) invalid('nics', `${f}.hardware_address ${mac} is used twice`);
  macs.add(mac);
  if (nic.ipv4Address !== undefined) {
    if (!isIPv4(nic.ipv4Address)) invalid('nics', `${f}.ipv4_address ${JSON.stringify(nic.ipv4Address)} is not an IPv4 address`);
    if (!isPrefix(nic.ipv4PrefixLength, 32)) invalid('nics', `${f}: an IPv4 address needs a prefix length of 0-32`);
  }
  if (nic.ipv4Gateway !== undefined) {
    if (!isIPv4(nic.ipv4Gateway)) invalid('nics', `${f}.ipv4 gateway ${JSON.stringify(nic.ipv4Gateway)} is not an IPv4 address`);
    if (nic.ipv4Address === undefined) invalid('nics', `${f}: a gateway needs a static IPv4 address`);
  }
  if (nic.ipv6Address !== undefined) {
    if (!isIPv6(nic.ipv6Address)) invalid('nics', `${f}.ipv6_address ${JSON.stringify(nic.ipv6Address)} is not an IPv6 address`);
    if (!isPrefix(nic.ipv6PrefixLength, 128)) invalid('nics', `${f}: an IPv6 address needs a prefix length of 0-128`);
  }
  // 68 is IPv4's minimum; 65535 the largest a Linux link takes.
  if (nic.mtu !== undefined && !(Number.isInteger(nic.mtu) && nic.mtu >= 68 && nic.mtu <= 65535)) {
    invalid('nics', `${f}.mtu ${JSON.stringify(nic.mtu)} must be an integer 68-65535`);
  }
}

function isPrefix(n: unknown, max: number): boolean {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= max;
}

export function metaDataDocument(spec: CloudInitSpec): Record<string, unknown> {
  return { 'instance-id': spec.instanceId, 'local-hostname': spec.hostname };
}

export function userDataDocument(spec: CloudInitSpec): Record<string, unknown> {
  const hash = spec.loginPasswordHash;
  const password = hash === undefined ? spec.loginPassword : undefined;
  const doc: Record<string, unknown> = {
    hostname: spec.hostname.split('.')[0],
    ...(spec.hostname.includes('.') ? { fqdn: spec.hostname } : {}),
    ssh_pwauth: password !== undefined || hash !== undefined,
  };
  if (spec.loginUsername === undefined) {
    // Without a user of ours, keys and password go to the image's default user. cloud-init's
    // chpasswd recognizes a $6$ hash in `password` and sets it as a hash.
    doc['ssh_authorized_keys'] = [...spec.sshAuthorizedKeys];
    if (password !== undefined || hash !== undefined) {
      doc['password'] = hash ?? password;
      doc['chpasswd'] = { expire: false };
    }
    return doc;
  }
  const user = spec.loginUsername;
  doc['users'] = [{
    name: user,
    sudo: 'ALL=(ALL) NOPASSWD:ALL',
    shell: '/bin/bash',
    lock_passwd: password === undefined && hash === undefined,
    // `passwd` is the hash itself (useradd -p), understood by every cloud-init version.
    ...(hash !== undefined ? { passwd: hash } : {}),
    ssh_authorized_keys: [...spec.sshAuthorizedKeys],
  }];
  if (password !== undefined) {
    doc['chpasswd'] = {
      expire: false,
      // `users` is what cloud-init >= 22.2 reads; `list` is what older guests (Ubuntu 18.04's
      // original image) understand. Newer ones apply both, with the same result.
      users: [{ name: user, password, type: 'text' }],
      list: `${user}:${password}`,
    };
  }
  return doc;
}

/** Netplan-style network config v2: each nic found by its MAC and named eth<i>. */
export function networkConfigDocument(spec: CloudInitSpec): Record<string, unknown> {
  const ethernets: Record<string, unknown> = {};
  spec.nics.forEach((nic, i) => {
    const name = `eth${i}`;
    const addresses: string[] = [];
    if (nic.ipv4Address !== undefined) addresses.push(`${nic.ipv4Address}/${nic.ipv4PrefixLength}`);
    if (nic.ipv6Address !== undefined) addresses.push(`${nic.ipv6Address}/${nic.ipv6PrefixLength}`);
    ethernets[name] = {
      match: { macaddress: nic.hardwareAddress.toLowerCase() },
      'set-name': name,
      // No static IPv4 from IPAM: let the network's DHCP (if any) answer.
      dhcp4: nic.ipv4Address === undefined,
      ...(addresses.length ? { addresses } : {}),
      // Behind a VXLAN overlay the bridge carries 1450-byte frames; a guest left at 1500 would
      // lose every full-sized packet without a word.
      ...(nic.mtu !== undefined ? { mtu: nic.mtu } : {}),
      // A default route rather than gateway4, which newer netplan deprecates; 0.0.0.0/0 instead
      // of `default`, which old netplan does not know.
      ...(nic.ipv4Gateway !== undefined ? { routes: [{ to: '0.0.0.0/0', via: nic.ipv4Gateway }] } : {}),
    };
  });
  return { version: 2, ethernets };
}

export interface SeedFiles {
  'meta-data': string;
  'user-data': string;
  'network-config': string;
}

/** The three NoCloud files, validated and rendered. */
export function renderSeedFiles(spec: CloudInitSpec): SeedFiles {
  validateCloudInitSpec(spec);
  return {
    'meta-data': toYaml(metaDataDocument(spec)),
    // cloud-init only treats user-data as cloud-config when its first line says so.
    'user-data': `#cloud-config\n${toYaml(userDataDocument(spec))}`,
    'network-config': toYaml(networkConfigDocument(spec)),
  };
}

export class NoCloudDriver implements CloudInitDriver {
  async buildSeedIso(isoPath: string, spec: CloudInitSpec): Promise<void> {
    requireAbsolutePath(isoPath);
    const files = renderSeedFiles(spec);
    // The password is in user-data: readable by root only, in the file and in the ISO.
    const image = buildIso9660('cidata', (Object.keys(files) as Array<keyof SeedFiles>).map((name) => ({ name, data: Buffer.from(files[name], 'utf8'), mode: 0o600 })));
    const tmp = tempPathBeside(isoPath);
    // Written with blocking calls: a few hundred KiB into the page cache and a rename take well
    // under a millisecond, while each of the four hops through libuv's thread pool waited its
    // turn for a CPU (and behind the pool's other work) in a burst of booting guests.
    try {
      writeFileSync(tmp, image, { mode: 0o600, flag: 'wx' });
      // Replaced, not refused: the seed follows the VM's spec, and a running QEMU keeps the old inode.
      // Not synced: the agent builds the seed again before every boot, so one torn by a host crash
      // is never booted from.
      renameSync(tmp, isoPath);
    } catch (err) {
      await removeQuietly(tmp);
      throw err;
    }
    log.debug('seed iso built', { path: isoPath, instanceId: spec.instanceId });
  }
}
