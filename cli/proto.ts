// The facade's API as data: proto/n0stack.proto loaded at runtime with @grpc/proto-loader, so the
// CLI checks `do` files against the very messages the server decodes (no generated copy to drift).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_PACKAGE = 'n0stack';
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

/** The seed's resource types; `type: X` in a `do` file means service `XService`. */
export const SEED_TYPES = ['Node', 'Network', 'BlockStorage', 'Image', 'VirtualMachine'] as const;
export type SeedType = (typeof SEED_TYPES)[number];

export function protoDirectory(): string {
  // Works from both the TypeScript sources (cli/) and the build (dist/cli/).
  for (const candidate of [path.resolve(__dirname, '..', 'proto'), path.resolve(__dirname, '..', '..', 'proto')]) {
    if (fs.existsSync(path.join(candidate, 'n0stack.proto'))) return candidate;
  }
  throw new Error(`proto/ not found near ${__dirname}`);
}

let definition: protoLoader.PackageDefinition | undefined;

export function facadeDefinition(): protoLoader.PackageDefinition {
  definition ??= protoLoader.loadSync(path.join(protoDirectory(), 'n0stack.proto'), LOADER_OPTIONS);
  return definition;
}

/** What a request field accepts, reduced to what a YAML author can get wrong. */
export type FieldKind = 'string' | 'integer' | 'unsigned' | 'bool' | 'float' | 'bytes' | 'enum' | 'message' | 'map';

export interface FieldInfo {
  name: string;
  kind: FieldKind;
  repeated: boolean;
  /** Fully qualified message name for 'message' fields and map values that are messages. */
  messageType?: string;
  /** For 'map': the value's kind (keys are always strings in our proto). */
  mapValue?: FieldInfo;
}

interface DescriptorField {
  name: string; type: string; label: string; typeName: string;
}
interface DescriptorMessage {
  name: string; field: DescriptorField[]; nestedType: DescriptorMessage[]; options?: { mapEntry?: boolean } | null;
}

const SCALARS: Record<string, FieldKind> = {
  TYPE_STRING: 'string', TYPE_BOOL: 'bool', TYPE_BYTES: 'bytes', TYPE_ENUM: 'enum',
  TYPE_INT32: 'integer', TYPE_INT64: 'integer', TYPE_SINT32: 'integer', TYPE_SINT64: 'integer', TYPE_SFIXED32: 'integer', TYPE_SFIXED64: 'integer',
  TYPE_UINT32: 'unsigned', TYPE_UINT64: 'unsigned', TYPE_FIXED32: 'unsigned', TYPE_FIXED64: 'unsigned',
  TYPE_DOUBLE: 'float', TYPE_FLOAT: 'float',
};

function messageDescriptor(fullName: string): DescriptorMessage {
  const entry = facadeDefinition()[fullName] as { type?: DescriptorMessage } | undefined;
  if (!entry?.type) throw new Error(`message ${fullName} is not in proto/n0stack.proto`);
  return entry.type;
}

function resolveTypeName(typeName: string, scope: string): string {
  // proto-loader keeps names as written in the .proto; try the enclosing package, then as given.
  const clean = typeName.replace(/^\./, '');
  const defs = facadeDefinition();
  for (const candidate of [`${scope}.${clean}`, clean]) if (defs[candidate]) return candidate;
  return clean;
}

function fieldInfo(field: DescriptorField, owner: DescriptorMessage, pkg: string): FieldInfo {
  const repeated = field.label === 'LABEL_REPEATED';
  if (field.type === 'TYPE_MESSAGE') {
    const nested = owner.nestedType.find((n) => n.name === field.typeName && n.options?.mapEntry);
    if (nested) {
      const value = nested.field.find((f) => f.name === 'value')!;
      return { name: field.name, kind: 'map', repeated: false, mapValue: fieldInfo(value, nested, pkg) };
    }
    return { name: field.name, kind: 'message', repeated, messageType: resolveTypeName(field.typeName, pkg) };
  }
  const kind = SCALARS[field.type];
  if (!kind) throw new Error(`unsupported proto field type ${field.type} for ${field.name}`);
  return { name: field.name, kind, repeated };
}

/** The fields of a message, by proto name. */
export function messageFields(fullName: string): Map<string, FieldInfo> {
  const message = messageDescriptor(fullName);
  const pkg = fullName.slice(0, fullName.lastIndexOf('.'));
  return new Map(message.field.map((f) => [f.name, fieldInfo(f, message, pkg)]));
}

export interface MethodInfo {
  service: string;
  method: string;
  requestType: string;
  responseType: string;
  responseStream: boolean;
}

interface ServiceMethodDefinition {
  requestType: { type: DescriptorMessage }; responseType: { type: DescriptorMessage }; responseStream: boolean;
}

function fullNameOf(type: DescriptorMessage): string {
  // Method definitions carry the descriptor without its package; message names are unique in our
  // proto and its two well-known imports, so the short name finds it.
  const own = `${PROTO_PACKAGE}.${type.name}`;
  const defs = facadeDefinition();
  if (defs[own]) return own;
  return Object.keys(defs).find((name) => name.endsWith(`.${type.name}`)) ?? own;
}

/** The RPCs of one service (e.g. "VirtualMachineService"), in .proto order. */
export function serviceMethods(service: string): MethodInfo[] {
  const def = facadeDefinition()[`${PROTO_PACKAGE}.${service}`] as Record<string, ServiceMethodDefinition> | undefined;
  if (!def) return [];
  return Object.entries(def).map(([method, m]) => ({
    service,
    method,
    requestType: fullNameOf(m.requestType.type),
    responseType: fullNameOf(m.responseType.type),
    responseStream: m.responseStream,
  }));
}

export function methodInfo(service: string, method: string): MethodInfo | undefined {
  return serviceMethods(service).find((m) => m.method === method);
}

export function serviceForType(type: SeedType): string {
  return `${type}Service`;
}
