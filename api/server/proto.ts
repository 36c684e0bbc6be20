// The facade's wire contract: the seed's n0proto files under proto/n0stack/ (packages
// n0stack.pool, n0stack.budget, n0stack.provisioning, n0stack.deployment, plus our own package
// n0stack for ResourceService), loaded at run time (no codegen step), from the sources or dist/.
// Code names services by their short names (NodeService); the wire uses the full ones.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Each service's full name: the path an original client calls is `/<full name>/<Method>`. */
export const SERVICE_FULL_NAMES = {
  NodeService: 'n0stack.pool.NodeService',
  NetworkService: 'n0stack.pool.NetworkService',
  BlockStorageService: 'n0stack.provisioning.BlockStorageService',
  VirtualMachineService: 'n0stack.provisioning.VirtualMachineService',
  ImageService: 'n0stack.deployment.ImageService',
  ResourceService: 'n0stack.ResourceService',
} as const;
export type ServiceName = keyof typeof SERVICE_FULL_NAMES;

/** The files that define the services, relative to proto/ (the include directory). */
export const FACADE_PROTO_FILES = [
  'n0stack/pool/node.proto',
  'n0stack/pool/network.proto',
  'n0stack/provisioning/block_storage.proto',
  'n0stack/provisioning/virtual_machine.proto',
  'n0stack/deployment/image.proto',
  'n0stack/resource.proto',
];

export function protoDirectory(): string {
  for (const candidate of [path.resolve(__dirname, '..', '..', 'proto'), path.resolve(__dirname, '..', '..', '..', 'proto')]) {
    if (fs.existsSync(path.join(candidate, FACADE_PROTO_FILES[0]))) return candidate;
  }
  throw new Error(`proto/ not found near ${__dirname}`);
}

export function fullServiceName(service: string): string {
  const full = (SERVICE_FULL_NAMES as Record<string, string>)[service];
  if (!full) throw new Error(`${service} is not a service of the n0stack API`);
  return full;
}

export function loadFacadeProto(options: { longs?: typeof String | typeof Number; enums?: typeof String } = {}): protoLoader.PackageDefinition {
  return protoLoader.loadSync(FACADE_PROTO_FILES, {
    keepCase: true, longs: options.longs ?? Number, enums: options.enums ?? String, defaults: true, oneofs: true,
    includeDirs: [protoDirectory()],
  });
}

/** A service's definition in a loaded package definition, by its short name. */
export function serviceDefinition(definition: protoLoader.PackageDefinition, service: string): protoLoader.ServiceDefinition {
  const def = definition[fullServiceName(service)];
  if (!def) throw new Error(`${fullServiceName(service)} is not in the loaded proto`);
  return def as protoLoader.ServiceDefinition;
}

/** The client constructor (with `.service`) of a service, by its short name. */
export function grpcService(definition: protoLoader.PackageDefinition, service: string): grpc.ServiceClientConstructor {
  let value: unknown = grpc.loadPackageDefinition(definition);
  for (const part of fullServiceName(service).split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
  if (typeof value !== 'function') throw new Error(`${fullServiceName(service)} is not in the loaded proto`);
  return value as grpc.ServiceClientConstructor;
}

export interface DescriptorField { name: string; number: number; type: string; label: string; typeName: string }
export interface DescriptorEnum { name: string; value: { name: string; number: number }[] }
export interface DescriptorMessage {
  name: string; field: DescriptorField[]; nestedType: DescriptorMessage[]; enumType?: DescriptorEnum[]; options?: { mapEntry?: boolean } | null;
}

/** A message's descriptor by full name; nested messages (Image.RegisteredBlockStorage) too. */
export function messageDescriptor(definition: protoLoader.PackageDefinition, fullName: string): DescriptorMessage | undefined {
  const top = (definition[fullName] as { type?: DescriptorMessage } | undefined)?.type;
  if (top && Array.isArray(top.field)) return top;
  const dot = fullName.lastIndexOf('.');
  if (dot < 0) return undefined;
  return messageDescriptor(definition, fullName.slice(0, dot))?.nestedType.find((n) => n.name === fullName.slice(dot + 1));
}

/**
 * A field's type name as proto-loader writes it (relative: "Condition", "budget.Compute")
 * resolved as protoc resolves it: the innermost scope first, then outwards.
 */
export function resolveTypeName(definition: protoLoader.PackageDefinition, scope: string, typeName: string): string {
  if (typeName.startsWith('.')) return typeName.slice(1);
  for (let s = scope; ; s = s.includes('.') ? s.slice(0, s.lastIndexOf('.')) : '') {
    const candidate = s ? `${s}.${typeName}` : typeName;
    if (messageDescriptor(definition, candidate)) return candidate;
    if (!s) return typeName;
  }
}

/**
 * The full name of a method's request or response type. Method definitions carry the bare
 * descriptor; GenerateBlockStorage answers with another package's message, hence the search.
 */
export function methodTypeName(definition: protoLoader.PackageDefinition, service: string, type: { name: string }): string {
  const pkg = fullServiceName(service).slice(0, fullServiceName(service).lastIndexOf('.'));
  const resolved = resolveTypeName(definition, pkg, type.name);
  if (messageDescriptor(definition, resolved)) return resolved;
  const matches = Object.keys(definition).filter((name) => name.endsWith(`.${type.name}`) && messageDescriptor(definition, name));
  if (matches.length !== 1) throw new Error(`message ${type.name} of ${service} is ${matches.length ? `ambiguous: ${matches.join(', ')}` : 'not in the loaded proto'}`);
  return matches[0];
}
