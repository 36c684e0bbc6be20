// Request validation for the agent's RPCs: pure functions that either return the request
// unchanged or throw InvalidArgumentError naming the (snake_case, as on the wire) field. HostAgent
// calls them before touching anything, so a hostile request never reaches a path or an argument.
import * as net from 'node:net';
import * as path from 'node:path';
import { InvalidArgumentError } from '../api/errors';
import { validateName } from '../api/names';
import { SHA512_CRYPT_PATTERN } from '../api/logic/password';
import type { EnsureBlockStorageRequest, EnsureNetworkRequest, EnsureVmRequest, VmAction, VmNic } from './api';

export const VM_ACTIONS: readonly VmAction[] = ['REBOOT', 'HARD_REBOOT', 'SHUTDOWN', 'HARD_SHUTDOWN', 'PAUSE', 'RESUME', 'BOOT'];
export const RUN_STATES: readonly EnsureVmRequest['runState'][] = ['RUNNING', 'SHUTDOWN', 'PAUSED'];
export const CONSOLE_KINDS = ['serial', 'vnc'] as const;

/** VXLAN network identifiers are 24 bits. */
export const MAX_SEGMENT_ID = 0xffffff;
export const MAX_NICS = 64;
export const MAX_VCPUS = 255;
const MiB = 1024 * 1024;

function invalid(field: string, message: string): never {
  throw new InvalidArgumentError(`${field} ${message}`, field);
}

export function positiveInteger(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) invalid(field, `must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

function integerIn(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) invalid(field, `must be an integer in ${min}-${max}, got ${JSON.stringify(value)}`);
  return value;
}

function plainString(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string') invalid(field, 'must be a string');
  if (value.length > max) invalid(field, `must be at most ${max} characters`);
  if (/[\0\r\n]/.test(value)) invalid(field, 'must not contain NUL or line breaks');
  return value;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** A unicast MAC address in the usual colon form. */
export function validateMac(value: unknown, field: string): string {
  if (typeof value !== 'string' || !MAC.test(value)) invalid(field, `${JSON.stringify(value)} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  if (parseInt(value.slice(0, 2), 16) & 1) invalid(field, `${value} is a multicast address`);
  return value;
}

export function validateIp(value: unknown, field: string, family?: 4 | 6): string {
  const got = typeof value === 'string' ? net.isIP(value) : 0;
  if (got === 0 || (family && got !== family)) invalid(field, `${JSON.stringify(value)} is not an IPv${family ?? '4/6'} address`);
  return value as string;
}

/** "address/prefix", e.g. 10.0.0.1/24 or fd00::1/64. */
export function validateCidr(value: unknown, field: string): string {
  if (typeof value !== 'string') invalid(field, 'must be a string');
  const [addr, prefix, extra] = value.split('/');
  const family = net.isIP(addr ?? '');
  if (!family || extra !== undefined || !/^\d{1,3}$/.test(prefix ?? '') || Number(prefix) > (family === 4 ? 32 : 128)) {
    invalid(field, `${JSON.stringify(value)} is not an address with a prefix length (e.g. 10.0.0.1/24)`);
  }
  return value;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SHA256 = /^[0-9a-f]{64}$/i;
// Linux user names as useradd accepts them by default.
const USERNAME = /^[a-z_][a-z0-9_-]{0,31}$/;

function validateUrl(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    invalid(field, `${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') invalid(field, `must be http(s), got ${url.protocol}`);
  if (value.length > 4096) invalid(field, 'must be at most 4096 characters');
  return value;
}

/** Absolute host path given to QEMU as one argument (commas would split QEMU's option syntax). */
function validateHostPath(value: unknown, field: string): string {
  const s = plainString(value, field, 4096);
  if (!path.isAbsolute(s) || s.includes(',') || path.normalize(s) !== s) invalid(field, `${JSON.stringify(s)} must be a normalized absolute path without commas`);
  return s;
}

export function validateEnsureBlockStorage(req: EnsureBlockStorageRequest): EnsureBlockStorageRequest {
  validateName(req.name, 'name');
  positiveInteger(req.limitBytes, 'limit_bytes');
  const sources = (['sourceUrl', 'copyFrom', 'backingFrom'] as const).filter((k) => req[k] !== undefined);
  if (sources.length > 1) invalid('source', `must be at most one of source_url, copy_from, backing_from (got ${sources.length})`);
  if (req.sourceUrl !== undefined) validateUrl(req.sourceUrl, 'source_url');
  if (req.sourceSha256 !== undefined) {
    if (req.sourceUrl === undefined) invalid('source_sha256', 'is only meaningful with source_url');
    if (!SHA256.test(req.sourceSha256)) invalid('source_sha256', 'must be 64 hex digits');
  }
  for (const field of ['copyFrom', 'backingFrom'] as const) {
    const wire = field === 'copyFrom' ? 'copy_from' : 'backing_from';
    if (req[field] === undefined) continue;
    validateName(req[field], wire);
    if (req[field] === req.name) invalid(wire, 'must name another block storage');
  }
  return req;
}

export function validateEnsureNetwork(req: EnsureNetworkRequest): EnsureNetworkRequest {
  validateName(req.name, 'name');
  // VLAN networks need no overlay segment; VXLAN ones do (VNI 0 is reserved).
  integerIn(req.segmentId, 'segment_id', req.vlanId === undefined ? 1 : 0, MAX_SEGMENT_ID);
  if (!Array.isArray(req.peers)) invalid('peers', 'must be a list');
  req.peers.forEach((p) => validateIp(p, 'peers'));
  if (req.gatewayCidr !== undefined) validateCidr(req.gatewayCidr, 'gateway_cidr');
  if (req.vlanId !== undefined) integerIn(req.vlanId, 'vlan_id', 1, 4094);
  return req;
}

export function validateVmNic(nic: VmNic, index: number): VmNic {
  const f = (name: string) => `nics[${index}].${name}`;
  validateName(nic.networkName, f('network_name'));
  validateMac(nic.hardwareAddress, f('hardware_address'));
  if (nic.ipv4Address !== undefined) validateIp(nic.ipv4Address, f('ipv4_address'), 4);
  if (nic.ipv4PrefixLength !== undefined) integerIn(nic.ipv4PrefixLength, f('ipv4_prefix_length'), 0, 32);
  if (nic.ipv4Gateway !== undefined) validateIp(nic.ipv4Gateway, f('ipv4_gateway'), 4);
  if (nic.ipv6Address !== undefined) validateIp(nic.ipv6Address, f('ipv6_address'), 6);
  if (nic.ipv6PrefixLength !== undefined) integerIn(nic.ipv6PrefixLength, f('ipv6_prefix_length'), 0, 128);
  return nic;
}

export function validateEnsureVm(req: EnsureVmRequest): EnsureVmRequest {
  validateName(req.name, 'name');
  if (typeof req.uuid !== 'string' || !UUID.test(req.uuid)) invalid('uuid', `${JSON.stringify(req.uuid)} is not a UUID`);
  integerIn(req.vcpus, 'vcpus', 1, MAX_VCPUS);
  positiveInteger(req.memoryBytes, 'memory_bytes');
  // QEMU's -m takes whole MiB; say so here rather than after taps and ISO are made.
  if (req.memoryBytes % MiB !== 0 || req.memoryBytes < 16 * MiB) invalid('memory_bytes', `must be a whole number of MiB, at least 16 MiB, got ${req.memoryBytes}`);
  if (!Array.isArray(req.blockStorageNames)) invalid('block_storage_names', 'must be a list');
  req.blockStorageNames.forEach((n) => validateName(n, 'block_storage_names'));
  if (new Set(req.blockStorageNames).size !== req.blockStorageNames.length) invalid('block_storage_names', 'must not repeat a block storage');
  if (!Array.isArray(req.nics) || req.nics.length > MAX_NICS) invalid('nics', `must be a list of at most ${MAX_NICS}`);
  req.nics.forEach(validateVmNic);
  const macs = req.nics.map((n) => n.hardwareAddress.toLowerCase());
  if (new Set(macs).size !== macs.length) invalid('nics', 'must not repeat a hardware address');
  if (req.loginUsername !== undefined && !USERNAME.test(req.loginUsername)) invalid('login_username', `${JSON.stringify(req.loginUsername)} is not a valid user name`);
  if (req.loginPassword !== undefined) plainString(req.loginPassword, 'login_password', 256);
  if (req.loginPasswordHash !== undefined && (typeof req.loginPasswordHash !== 'string' || !SHA512_CRYPT_PATTERN.test(req.loginPasswordHash))) {
    invalid('login_password_hash', 'must be a SHA-512 crypt hash ($6$salt$...)');
  }
  if (!Array.isArray(req.sshAuthorizedKeys)) invalid('ssh_authorized_keys', 'must be a list');
  req.sshAuthorizedKeys.forEach((k) => plainString(k, 'ssh_authorized_keys', 16384));
  if (!RUN_STATES.includes(req.runState)) invalid('run_state', `must be one of ${RUN_STATES.join(', ')}, got ${JSON.stringify(req.runState)}`);
  if (req.kernel !== undefined) validateHostPath(req.kernel, 'kernel');
  if (req.initrd !== undefined) {
    if (req.kernel === undefined) invalid('initrd', 'needs kernel');
    validateHostPath(req.initrd, 'initrd');
  }
  if (req.kernelArgs !== undefined) {
    if (req.kernel === undefined) invalid('kernel_args', 'needs kernel');
    plainString(req.kernelArgs, 'kernel_args', 4096);
  }
  return req;
}

export function validateVmAction(name: string, action: VmAction): void {
  validateName(name, 'name');
  if (!VM_ACTIONS.includes(action)) invalid('action', `must be one of ${VM_ACTIONS.join(', ')}, got ${JSON.stringify(action)}`);
}

export function validateConsoleKind(kind: string): 'serial' | 'vnc' {
  if (!(CONSOLE_KINDS as readonly string[]).includes(kind)) invalid('kind', `must be serial or vnc, got ${JSON.stringify(kind)}`);
  return kind as 'serial' | 'vnc';
}
