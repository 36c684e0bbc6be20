// Our wire contract (proto/n0stack/) against the seed's (cli/testing/n0proto-0.2.94/, written from
// ../shared/N0PROTO.md): every original service, method, message, field number, type and enum
// value is ours unchanged, and what we add never reuses a number; and bytes we send decode with
// the original definitions, our additions skipped.
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { loadFacadeProto, messageDescriptor, resolveTypeName, type DescriptorMessage } from './proto';
import { nodeMessage, virtualMachineMessage } from './convert';
import type { Node, VirtualMachine } from '../types';

const SEED_DIR = path.join(__dirname, '..', '..', 'cli', 'testing', 'n0proto-0.2.94');
const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true };
const seed = protoLoader.loadSync(['n0stack/pool.proto', 'n0stack/provisioning.proto', 'n0stack/deployment.proto'], { ...OPTIONS, includeDirs: [SEED_DIR] });
const ours = loadFacadeProto({ longs: String });

type Method = { path: string; requestType: { type: { name: string } }; responseType: { type: { name: string } } };
const services = (def: protoLoader.PackageDefinition) => Object.keys(def).filter((k) => !('format' in (def[k] as object)));

/** Every message and nested message of the seed, by full name. */
function seedMessages(): string[] {
  const names: string[] = [];
  const visit = (full: string, m: DescriptorMessage) => {
    names.push(full);
    for (const n of m.nestedType) if (!n.options?.mapEntry) visit(`${full}.${n.name}`, n);
  };
  for (const key of Object.keys(seed)) {
    const m = messageDescriptor(seed, key);
    if (m && key.startsWith('n0stack.')) visit(key, m);
  }
  return names;
}

/** A field as the wire sees it: number, type, label, and the full name of a message/enum type. */
function wireField(def: protoLoader.PackageDefinition, scope: string, m: DescriptorMessage, name: string) {
  const f = m.field.find((x) => x.name === name);
  if (!f) return undefined;
  let type = f.type;
  const entry = m.nestedType.find((n) => n.name === f.typeName && n.options?.mapEntry);
  if (entry) {
    const v = entry.field.find((x) => x.name === 'value')!;
    type = `map<${v.type === 'TYPE_MESSAGE' ? resolveTypeName(def, scope, v.typeName) : v.type}>`;
  } else if (f.type === 'TYPE_MESSAGE') type = resolveTypeName(def, scope, f.typeName);
  else if (f.type === 'TYPE_ENUM') {
    const e = m.enumType?.find((x) => x.name === f.typeName);
    type = `enum ${e?.value.map((v) => `${v.name}=${v.number}`).join(',')}`;
  }
  return { number: f.number, label: f.label, type };
}

describe('the seed-era n0proto is our wire contract', () => {
  const messages = seedMessages();

  it('has the seed\'s 66 messages (the fixture holds all of N0PROTO.md)', () => {
    expect(messages.length).toBe(66);
    expect(messages).toContain('n0stack.deployment.Image.RegisteredBlockStorage');
  });

  it.each(messages)('%s: every original field with its number and type; ours on numbers the original does not use', (full) => {
    const theirs = messageDescriptor(seed, full)!;
    const mine = messageDescriptor(ours, full);
    expect(mine).toBeDefined();
    for (const f of theirs.field) expect([f.name, wireField(ours, full, mine!, f.name)]).toEqual([f.name, wireField(seed, full, theirs, f.name)]);
    const original = new Set(theirs.field.map((f) => f.number));
    const added = mine!.field.filter((f) => !theirs.field.some((t) => t.name === f.name));
    for (const f of added) expect([f.name, original.has(f.number)]).toEqual([f.name, false]);
    expect(new Set(mine!.field.map((f) => f.number)).size).toBe(mine!.field.length);
  });

  it('serves every original method at its original path with the original types', () => {
    const seedServices = services(seed).filter((k) => k.startsWith('n0stack.'));
    expect(seedServices.sort()).toEqual(['n0stack.deployment.ImageService', 'n0stack.pool.NetworkService', 'n0stack.pool.NodeService', 'n0stack.provisioning.BlockStorageService', 'n0stack.provisioning.VirtualMachineService']);
    for (const service of seedServices) {
      const theirs = seed[service] as unknown as Record<string, Method>;
      const mine = ours[service] as unknown as Record<string, Method> | undefined;
      expect(mine).toBeDefined();
      for (const [method, m] of Object.entries(theirs)) {
        expect([method, mine![method]?.path, mine![method]?.requestType.type.name, mine![method]?.responseType.type.name])
          .toEqual([method, m.path, m.requestType.type.name, m.responseType.type.name]);
      }
    }
  });

  it('sends bytes an original client decodes, our additions skipped (proto3 unknown fields)', () => {
    const node: Node = {
      apiVersion: 'n0stack.io/v1alpha1', kind: 'Node',
      metadata: { name: 'vm-host1', labels: { zone: 'a' }, annotations: { a: 'b' } },
      spec: { address: '10.0.0.1', cpu_milli_cores: 4000, memory_bytes: 8 * 2 ** 30, storage_bytes: 2 ** 40, rack: 'r1', agent_endpoint: '10.0.0.1:20181' },
      status: { state: 'Ready', accelerator: 'kvm', reserved_computes: { vm1: { request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 2 ** 20, limit_memory_bytes: 2 ** 20 } } },
    };
    const serialize = (ours['n0stack.pool.NodeService'] as unknown as Record<string, { responseSerialize(v: unknown): Buffer }>).GetNode.responseSerialize;
    const decode = (seed['n0stack.pool.NodeService'] as unknown as Record<string, { responseDeserialize(b: Buffer): any }>).GetNode.responseDeserialize;
    const wire = serialize(nodeMessage(node));
    const decoded = decode(wire);
    expect(decoded).toEqual({
      name: 'vm-host1', annotations: { a: 'b' }, address: '10.0.0.1', cpu_milli_cores: 4000, memory_bytes: String(8 * 2 ** 30), storage_bytes: String(2 ** 40),
      ipmi_address: '', serial: '', datacenter: '', availability_zone: '', cell: '', rack: 'r1', unit: 1, state: 'Ready',
      reserved_computes: { vm1: { request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: String(2 ** 20), limit_memory_bytes: String(2 ** 20) } },
    });
    // ...and the bytes did carry our additions.
    const back = (ours['n0stack.pool.NodeService'] as unknown as Record<string, { responseDeserialize(b: Buffer): any }>).GetNode.responseDeserialize(wire);
    expect(back).toMatchObject({ labels: { zone: 'a' }, agent_endpoint: '10.0.0.1:20181', accelerator: 'kvm', exact_state: 'Ready' });
  });

  it('maps a state the original lacks onto its enum, the exact one beside it', () => {
    const vm: VirtualMachine = {
      apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm1' },
      spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 2 ** 26 },
      status: { state: 'FAILED', conditions: [{ type: 'Ready', status: 'False', reason: 'CrashLoopBackOff', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
    };
    const serialize = (ours['n0stack.provisioning.VirtualMachineService'] as unknown as Record<string, { responseSerialize(v: unknown): Buffer }>).GetVirtualMachine.responseSerialize;
    const wire = serialize(virtualMachineMessage(vm));
    const decode = (def: protoLoader.PackageDefinition) => (def['n0stack.provisioning.VirtualMachineService'] as unknown as Record<string, { responseDeserialize(b: Buffer): any }>).GetVirtualMachine.responseDeserialize(wire);
    expect(decode(seed)).toMatchObject({ name: 'vm1', state: 'UNKNOWN', limit_memory_bytes: String(2 ** 26) });
    expect(decode(seed).exact_state).toBeUndefined();
    expect(decode(ours)).toMatchObject({ state: 'UNKNOWN', exact_state: 'CrashLoopBackOff' });
  });
});
