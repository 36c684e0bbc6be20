// The one list of a kind's rules. The admission modules (this folder) throw by rule id, so every
// message and field comes from here; where a rule can be said on one object and its old self, its
// `cel` is the expression for the CRD's x-kubernetes-validations (written into crds/*.yaml by
// hack/gen-crd-validations.js, see crd-validations.ts), written
// against the scope named by `celScope` ("spec": self is the spec; "object": self is the whole
// document, for rules that need status). Rules without `cel` need other objects (references,
// dependants) or arithmetic CEL lacks (CIDR parsing): they hold only where admission runs.
import { FailedPreconditionError, InvalidArgumentError, type N0Error } from '../errors';
import type { Kind } from '../types';

export type RuleStage = 'create' | 'update' | 'delete';

export interface Rule {
  id: string;
  kind: Kind;
  /** The field the error names (its path inside spec, or the object for delete rules). */
  field: string;
  stages: readonly RuleStage[];
  /** InvalidArgument: the object itself is wrong. FailedPrecondition: wrong given the world. */
  code: 'InvalidArgument' | 'FailedPrecondition';
  message: string;
  cel?: string;
  celScope?: 'spec' | 'object';
}

const CREATE_UPDATE = ['create', 'update'] as const;
/** CEL for "this optional field is as it was" (has() takes a field selection, not an index). */
const unchanged = (f: string) => `has(self.${f}) == has(oldSelf.${f}) && (!has(self.${f}) || self.${f} == oldSelf.${f})`;

export const RULES = [
  // Network
  { id: 'network.spec', kind: 'Network', field: 'ipv4_cidr', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'a cidr is required and must parse; gateway_ipv4 must be inside ipv4_cidr; the vlan_id annotation must be a VLAN id' },
  { id: 'network.cidr-required', kind: 'Network', field: 'ipv4_cidr', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'ipv4_cidr (or ipv6_cidr) is required', cel: 'has(self.ipv4_cidr) || has(self.ipv6_cidr)', celScope: 'spec' },
  { id: 'network.ipv4-cidr-immutable-while-reserved', kind: 'Network', field: 'ipv4_cidr', stages: ['update'], code: 'FailedPrecondition',
    message: 'ipv4_cidr cannot change while network interfaces are reserved on the Network (they keep their addresses)' },
  { id: 'network.ipv6-cidr-immutable-while-reserved', kind: 'Network', field: 'ipv6_cidr', stages: ['update'], code: 'FailedPrecondition',
    message: 'ipv6_cidr cannot change while network interfaces are reserved on the Network (they keep their addresses)' },
  { id: 'network.delete-in-use', kind: 'Network', field: 'metadata.name', stages: ['delete'], code: 'FailedPrecondition',
    message: 'a Network with reserved interfaces (or VMs naming it) cannot be deleted; delete the virtual machines first' },

  // NetworkAddress
  { id: 'networkaddress.immutable', kind: 'NetworkAddress', field: 'address', stages: ['update'], code: 'InvalidArgument',
    message: 'a NetworkAddress is immutable (its name is its value; a holder releases it by deleting it)', cel: 'self == oldSelf', celScope: 'spec' },
  { id: 'networkaddress.name', kind: 'NetworkAddress', field: 'metadata.name', stages: ['create'], code: 'InvalidArgument',
    message: 'a NetworkAddress is named by its value: <network_name>.<family>.<address encoded> (api/addresses.ts addressName)' },
  { id: 'networkaddress.network', kind: 'NetworkAddress', field: 'network_name', stages: ['create'], code: 'FailedPrecondition',
    message: 'the Network must exist and not be being deleted' },

  // BlockStorage
  { id: 'blockstorage.limit-positive', kind: 'BlockStorage', field: 'limit_bytes', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'limit_bytes must be a positive integer', cel: 'self.limit_bytes > 0', celScope: 'spec' },
  { id: 'blockstorage.request-within-limit', kind: 'BlockStorage', field: 'request_bytes', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'request_bytes must be between 0 and limit_bytes', cel: 'self.request_bytes >= 0 && self.request_bytes <= self.limit_bytes', celScope: 'spec' },
  { id: 'blockstorage.one-source', kind: 'BlockStorage', field: 'source_url', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'only one of source_url, source_block_storage, backing_block_storage may be set',
    cel: '(has(self.source_url) ? 1 : 0) + (has(self.source_block_storage) ? 1 : 0) + (has(self.backing_block_storage) ? 1 : 0) <= 1', celScope: 'spec' },
  { id: 'blockstorage.source-url-http', kind: 'BlockStorage', field: 'source_url', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'source_url must be an http or https URL', cel: "!has(self.source_url) || self.source_url.startsWith('http://') || self.source_url.startsWith('https://')", celScope: 'spec' },
  { id: 'blockstorage.source-name', kind: 'BlockStorage', field: 'source_block_storage', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'source_block_storage and backing_block_storage must be valid names' },
  { id: 'blockstorage.limit-only-grows', kind: 'BlockStorage', field: 'limit_bytes', stages: ['update'], code: 'InvalidArgument',
    message: 'limit_bytes can only grow (a disk is never shrunk under its guest)', cel: 'self.limit_bytes >= oldSelf.limit_bytes', celScope: 'spec' },
  { id: 'blockstorage.request-only-grows', kind: 'BlockStorage', field: 'request_bytes', stages: ['update'], code: 'InvalidArgument',
    message: 'request_bytes can only grow (the disk may already use what was requested)', cel: 'self.request_bytes >= oldSelf.request_bytes', celScope: 'spec' },
  { id: 'blockstorage.source-immutable', kind: 'BlockStorage', field: 'source_url', stages: ['update'], code: 'InvalidArgument',
    message: 'source_url, source_sha256, source_block_storage and backing_block_storage are fixed at creation (the disk was made from them; a backing file is what protects its base)',
    cel: ['source_url', 'source_sha256', 'source_block_storage', 'backing_block_storage'].map(unchanged).join(' && '), celScope: 'spec' },
  { id: 'blockstorage.protect-in-use', kind: 'BlockStorage', field: 'protected', stages: ['update'], code: 'FailedPrecondition',
    message: 'a block storage IN_USE (attached to a VM or claimed) cannot become PROTECTED (registered in an image)' },
  { id: 'blockstorage.claim-protected', kind: 'BlockStorage', field: 'claimed_by', stages: ['update'], code: 'FailedPrecondition',
    message: 'a PROTECTED block storage cannot be claimed; GenerateBlockStorage makes a disk from it', cel: '!has(self.claimed_by) || !has(self.protected) || !self.protected', celScope: 'spec' },
  { id: 'blockstorage.release-attached', kind: 'BlockStorage', field: 'claimed_by', stages: ['update'], code: 'FailedPrecondition',
    message: 'a block storage attached to a VM cannot be made AVAILABLE; delete the VM first' },
  { id: 'blockstorage.overlay-not-smaller', kind: 'BlockStorage', field: 'limit_bytes', stages: ['create'], code: 'InvalidArgument',
    message: "a copy-on-write overlay's limit_bytes must be at least its backing disk's" },
  { id: 'blockstorage.source-exists', kind: 'BlockStorage', field: 'source_block_storage', stages: ['create'], code: 'FailedPrecondition',
    message: 'the source or backing block storage must exist and not be being deleted' },
  { id: 'blockstorage.delete-protected', kind: 'BlockStorage', field: 'metadata.name', stages: ['delete'], code: 'FailedPrecondition',
    message: 'a PROTECTED block storage (registered in an image) cannot be deleted; SetAvailableBlockStorage (or unregister it from its image) first' },
  { id: 'blockstorage.delete-in-use', kind: 'BlockStorage', field: 'metadata.name', stages: ['delete'], code: 'FailedPrecondition',
    message: 'a block storage IN_USE cannot be deleted' },
  { id: 'blockstorage.delete-dependants', kind: 'BlockStorage', field: 'metadata.name', stages: ['delete'], code: 'FailedPrecondition',
    message: 'a block storage that another disk uses as its backing file (or is being copied from), or that a VM names, cannot be deleted; delete those first' },

  // VirtualMachine
  { id: 'virtualmachine.spec', kind: 'VirtualMachine', field: 'limit_cpu_milli_core', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: "the seed's VM rules: whole cores, request_cpu <= limit_cpu, request_memory == limit_memory, valid nics and disk names, each disk once" },
  { id: 'virtualmachine.whole-cores', kind: 'VirtualMachine', field: 'limit_cpu_milli_core', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'limit_cpu_milli_core must be a positive multiple of 1000', cel: 'self.limit_cpu_milli_core > 0 && self.limit_cpu_milli_core % 1000 == 0', celScope: 'spec' },
  { id: 'virtualmachine.request-cpu-within-limit', kind: 'VirtualMachine', field: 'request_cpu_milli_core', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'request_cpu_milli_core must not exceed limit_cpu_milli_core', cel: '!has(self.request_cpu_milli_core) || self.request_cpu_milli_core <= self.limit_cpu_milli_core', celScope: 'spec' },
  { id: 'virtualmachine.memory-equal', kind: 'VirtualMachine', field: 'request_memory_bytes', stages: CREATE_UPDATE, code: 'InvalidArgument',
    message: 'request_memory_bytes must equal limit_memory_bytes (memory ballooning is disabled)', cel: '!has(self.request_memory_bytes) || self.request_memory_bytes == self.limit_memory_bytes', celScope: 'spec' },
  // Immutable after creation, not only while placed: the finalizer releases the reservations and
  // claims of the nics and disks the spec names at deletion, so changing them at any time after
  // the first reconcile would leak what the old ones held.
  { id: 'virtualmachine.nics-immutable', kind: 'VirtualMachine', field: 'nics', stages: ['update'], code: 'InvalidArgument',
    message: 'nics cannot change after creation (their reservations are released by what the spec names); delete and create the VM again',
    cel: unchanged('nics'), celScope: 'spec' },
  { id: 'virtualmachine.block-storage-names-immutable', kind: 'VirtualMachine', field: 'block_storage_names', stages: ['update'], code: 'InvalidArgument',
    message: 'block_storage_names cannot change after creation (their claims are released by what the spec names); delete and create the VM again',
    cel: unchanged('block_storage_names'), celScope: 'spec' },
  // Needs the node and what is placed on it, so no CEL; the controller commits a raise again
  // under the node's placement counter, which catches two raises admitted side by side.
  { id: 'virtualmachine.resize-fits', kind: 'VirtualMachine', field: 'limit_cpu_milli_core', stages: ['update'], code: 'FailedPrecondition',
    message: 'a placed VM\'s cpu and memory may rise only as far as its node has room for' },
  { id: 'virtualmachine.block-storage-usable', kind: 'VirtualMachine', field: 'block_storage_names', stages: ['create'], code: 'FailedPrecondition',
    message: 'every block storage a VM names must exist, not be PROTECTED, not be IN_USE by another VM and not be being deleted' },
  { id: 'virtualmachine.network-usable', kind: 'VirtualMachine', field: 'nics', stages: ['create'], code: 'FailedPrecondition',
    message: 'every network a VM names must exist and not be being deleted' },

  // Node
  { id: 'node.delete-in-use', kind: 'Node', field: 'metadata.name', stages: ['delete'], code: 'FailedPrecondition',
    message: 'a Node with virtual machines or block storages placed on it (or reservations on it) cannot be deleted; delete or move them first' },

  // Image
  { id: 'image.tag-registered', kind: 'Image', field: 'tags', stages: CREATE_UPDATE, code: 'FailedPrecondition',
    message: 'a tag may only name a block storage registered in the image',
    cel: '!has(self.tags) || self.tags.all(t, has(self.registered_block_storages) && self.registered_block_storages.exists(r, r.block_storage_name == self.tags[t]))', celScope: 'spec' },
] as const satisfies readonly Rule[];

export type RuleId = (typeof RULES)[number]['id'];

const BY_ID = new Map<string, Rule>(RULES.map((r) => [r.id, r]));

export function rule(id: RuleId): Rule {
  return BY_ID.get(id)!;
}

/**
 * The error for a broken rule: the rule's code, the field given (a more precise path such as
 * `nics[1].network_name`) or the rule's, and the detail or else the rule's message.
 */
export function violation(id: RuleId, detail?: string, field?: string): N0Error {
  const r = rule(id);
  const message = detail ?? r.message;
  const err = r.code === 'InvalidArgument' ? new InvalidArgumentError(message, field ?? r.field) : new FailedPreconditionError(message, field ?? r.field);
  // Which rule it was, for tests that hold the table's CEL against the modules (and for callers that report it).
  return Object.assign(err, { rule: id });
}

/** The CEL rules of a kind, in the shape of x-kubernetes-validations entries. */
/** Runs `check` (one of the shared checks in api/: names, IPAM, the seed's VM rules) and reports what it throws as rule `id`, keeping its message and field. */
export function asRule(id: RuleId, check: () => void): void {
  try { check(); } catch (err) {
    if (err instanceof Error && 'code' in err) throw violation(id, err.message, (err as N0Error).field);
    throw err;
  }
}

export function celRules(kind: Kind, scope: 'spec' | 'object'): { rule: string; message: string; fieldPath?: string }[] {
  return RULES.filter((r: Rule) => r.kind === kind && r.cel && r.celScope === scope)
    .map((r: Rule) => ({ rule: r.cel!, message: r.message, ...(scope === 'spec' ? { fieldPath: `.${r.field}` } : {}) }));
}
