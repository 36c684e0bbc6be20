// Every file path and every interface name the agent derives from a resource name goes through
// here, so a hostile name cannot escape the agent's directories or collide with host devices.
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { validateName } from '../api/names';
import { InvalidArgumentError } from '../api/errors';

/** Linux interface names are at most 15 bytes (IFNAMSIZ - 1). */
const IFNAMSIZ = 15;
/** sun_path is 108 bytes; keep a margin for the NUL. */
const MAX_SOCKET_PATH = 100;

function shortHash(input: string, length = 8): string {
  return createHash('sha256').update(input).digest('hex').slice(0, length);
}

export class AgentPaths {
  constructor(readonly dataDir: string) {
    if (!path.isAbsolute(dataDir)) throw new InvalidArgumentError(`data dir must be absolute: ${dataDir}`, 'dataDir');
  }

  get disksDir(): string { return path.join(this.dataDir, 'disks'); }
  get vmsDir(): string { return path.join(this.dataDir, 'vms'); }

  /** qcow2 file of a BlockStorage. */
  disk(blockStorageName: string): string {
    return this.inside(this.disksDir, `${validateName(blockStorageName, 'block_storage_name')}.qcow2`);
  }

  /**
   * Run directory of a VM: pidfile, QMP/serial/VNC sockets, seed ISO, launch spec. Long names are
   * hashed so socket paths stay under the sun_path limit.
   */
  vmDir(vmName: string): string {
    validateName(vmName, 'name');
    const plain = this.inside(this.vmsDir, vmName);
    if (path.join(plain, 'serial.sock').length <= MAX_SOCKET_PATH) return plain;
    const hashed = this.inside(this.vmsDir, `h-${shortHash(vmName, 24)}`);
    if (path.join(hashed, 'serial.sock').length > MAX_SOCKET_PATH) {
      throw new InvalidArgumentError(`data dir ${this.dataDir} is too long for unix socket paths`, 'dataDir');
    }
    return hashed;
  }

  private inside(dir: string, child: string): string {
    const full = path.resolve(dir, child);
    if (path.dirname(full) !== path.resolve(dir)) throw new InvalidArgumentError(`path escapes ${dir}: ${child}`, 'name');
    return full;
  }
}

export const INTERFACE_PREFIX = 'n0';

/** Bridge of a Network on a host: n0br + 8 hex of the network name (12 chars). */
export function bridgeName(networkName: string): string {
  return `${INTERFACE_PREFIX}br${shortHash(validateName(networkName, 'network_name'))}`;
}

/** VXLAN device of a Network: n0vx + 8 hex. */
export function vxlanName(networkName: string): string {
  return `${INTERFACE_PREFIX}vx${shortHash(validateName(networkName, 'network_name'))}`;
}

/** Tap of a VM nic: n0tp + 9 hex of "<vm>/<index>" (13 chars). */
export function tapName(vmName: string, nicIndex: number): string {
  validateName(vmName, 'name');
  if (!Number.isInteger(nicIndex) || nicIndex < 0 || nicIndex > 63) throw new InvalidArgumentError(`nic index ${nicIndex} out of range`, 'nics');
  return `${INTERFACE_PREFIX}tp${shortHash(`${vmName}/${nicIndex}`, 9)}`;
}

const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/** Validates a host interface name given by an operator (an uplink), and its VLAN sub-interface. */
export function vlanInterfaceName(uplink: string, vlanId: number): string {
  if (!IFNAME.test(uplink)) throw new InvalidArgumentError(`uplink interface ${JSON.stringify(uplink)} is not a valid interface name`, 'uplink');
  if (!Number.isInteger(vlanId) || vlanId < 1 || vlanId > 4094) throw new InvalidArgumentError(`vlan id ${vlanId} must be 1-4094`, 'vlan_id');
  const name = `${uplink}.${vlanId}`;
  if (name.length > IFNAMSIZ) return `${INTERFACE_PREFIX}vl${shortHash(name)}`;
  return name;
}
