// BlockStorage admission: sizes and sources are sane; sizes only grow and the sources are fixed;
// a copy or overlay names a source that exists and stays; a disk is not deleted while another
// disk is built on it (backing file, copy in progress) or a VM names it.
import { validateName } from '../names';
import type { BlockStorage } from '../types';
import { FINALIZERS } from './finalizers';
import { asRule, violation } from './rules';
import { describeDependants, type Dependant, type Strategy, type World } from './types';

const SOURCES = ['source_block_storage', 'backing_block_storage'] as const;
const FIXED = ['source_url', 'source_sha256', 'source_block_storage', 'backing_block_storage'] as const;
/** A copy needs its source only until it is made; these states mean it is made (or gave up). */
const SETTLED = new Set(['AVAILABLE', 'IN_USE', 'PROTECTED', 'FAILED']);

export function checkBlockStorageSpec(spec: BlockStorage['spec']): void {
  if (!Number.isInteger(spec.limit_bytes) || spec.limit_bytes <= 0) {
    throw violation('blockstorage.limit-positive', `limit_bytes must be a positive integer, got ${spec.limit_bytes}`);
  }
  if (!Number.isInteger(spec.request_bytes) || spec.request_bytes < 0 || spec.request_bytes > spec.limit_bytes) {
    throw violation('blockstorage.request-within-limit', `request_bytes must be between 0 and limit_bytes (${spec.limit_bytes}), got ${spec.request_bytes}`);
  }
  const sources = (['source_url', ...SOURCES] as const).filter((f) => spec[f]);
  if (sources.length > 1) throw violation('blockstorage.one-source', `only one of ${sources.join(', ')} may be set`, sources[1]);
  if (spec.source_url) {
    let url: URL;
    try { url = new URL(spec.source_url); } catch { throw violation('blockstorage.source-url-http', `source_url ${JSON.stringify(spec.source_url)} is not a URL`); }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw violation('blockstorage.source-url-http', `source_url must be http or https, got ${url.protocol}`);
  }
  for (const f of SOURCES) if (spec[f]) asRule('blockstorage.source-name', () => validateName(spec[f], f));
}

export const blockStorageStrategy: Strategy<'BlockStorage'> = {
  kind: 'BlockStorage',
  prepareForCreate(bs) {
    if (!bs.metadata.finalizers?.includes(FINALIZERS.blockStorage)) bs.metadata.finalizers = [...(bs.metadata.finalizers ?? []), FINALIZERS.blockStorage];
  },
  validateCreate(bs, lookup) {
    checkBlockStorageSpec(bs.spec);
    if (!lookup) return;
    for (const field of SOURCES) {
      const source = bs.spec[field];
      if (!source) continue;
      const found = lookup('BlockStorage', source);
      if (!found) throw violation('blockstorage.source-exists', `${field} "${source}" does not exist`, field);
      if (found.metadata.deletionTimestamp) throw violation('blockstorage.source-exists', `${field} "${source}" is being deleted`, field);
      // A smaller overlay would cut off the end of what the guest sees through it.
      if (field === 'backing_block_storage' && bs.spec.limit_bytes < found.spec.limit_bytes) {
        throw violation('blockstorage.overlay-not-smaller', `limit_bytes ${bs.spec.limit_bytes} is smaller than the backing disk's ${found.spec.limit_bytes} (${source})`);
      }
    }
  },
  validateUpdate(old, next) {
    checkBlockStorageSpec(next.spec);
    if (next.spec.limit_bytes < old.spec.limit_bytes) throw violation('blockstorage.limit-only-grows', `limit_bytes can only grow (${old.spec.limit_bytes} -> ${next.spec.limit_bytes})`);
    if (next.spec.request_bytes < old.spec.request_bytes) throw violation('blockstorage.request-only-grows', `request_bytes can only grow (${old.spec.request_bytes} -> ${next.spec.request_bytes})`);
    for (const f of FIXED) {
      if (old.spec[f] !== next.spec[f]) throw violation('blockstorage.source-immutable', `${f} is fixed at creation (${JSON.stringify(old.spec[f] ?? null)} -> ${JSON.stringify(next.spec[f] ?? null)})`, f);
    }
    // The seed's state machine over protected / claimed / attached (SetProtected, SetInuse, SetAvailable).
    const name = next.metadata.name;
    const attached = old.status?.in_use_by;
    if (next.spec.protected && !old.spec.protected && (attached || next.spec.claimed_by)) {
      throw violation('blockstorage.protect-in-use', `BlockStorage "${name}" is IN_USE${attached ? ` by ${attached}` : ''}; it cannot become PROTECTED`);
    }
    if (next.spec.claimed_by && next.spec.claimed_by !== old.spec.claimed_by && next.spec.protected) {
      throw violation('blockstorage.claim-protected', `BlockStorage "${name}" is PROTECTED; it cannot be claimed`);
    }
    if (old.spec.claimed_by && !next.spec.claimed_by && attached) {
      throw violation('blockstorage.release-attached', `BlockStorage "${name}" is attached to VirtualMachine "${attached}"`);
    }
  },
  references: (bs) => SOURCES.filter((f) => bs.spec[f]).map((f) => ({ kind: 'BlockStorage' as const, name: bs.spec[f]! })),
  dependants(bs, world: World): Dependant[] {
    const name = bs.metadata.name;
    const found: Dependant[] = [];
    for (const other of world.blockStorages) {
      if (other.metadata.name === name) continue;
      if (other.spec.backing_block_storage === name) found.push({ kind: 'BlockStorage', name: other.metadata.name, why: 'uses it as its backing file' });
      else if (other.spec.source_block_storage === name && !SETTLED.has(other.status?.state ?? '')) found.push({ kind: 'BlockStorage', name: other.metadata.name, why: 'is being copied from it' });
    }
    const vms = new Set<string>();
    for (const vm of world.virtualMachines) {
      if (!(vm.spec.block_storage_names ?? []).includes(name)) continue;
      vms.add(vm.metadata.name);
      found.push({ kind: 'VirtualMachine', name: vm.metadata.name, why: 'names it in block_storage_names' });
    }
    const user = bs.status?.in_use_by;
    if (user && !vms.has(user)) found.push({ kind: 'VirtualMachine', name: user, why: 'has it attached' });
    return found;
  },
  validateDelete(bs, dependants) {
    const name = bs.metadata.name;
    if (bs.spec.protected) throw violation('blockstorage.delete-protected', `BlockStorage "${name}" is PROTECTED; SetAvailableBlockStorage (or unregister it from its image) first`);
    const user = bs.status?.in_use_by || bs.spec.claimed_by;
    if (user) throw violation('blockstorage.delete-in-use', `BlockStorage "${name}" is IN_USE by ${user}`);
    if (dependants.length) throw violation('blockstorage.delete-dependants', `BlockStorage "${name}" is still needed by ${describeDependants(dependants)}; delete them first`);
  },
};
