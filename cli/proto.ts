// The facade's API as data: the n0proto files (api/server/proto.ts) loaded at runtime with
// @grpc/proto-loader, so the CLI checks `do` files against the very messages the server decodes
// (no generated copy to drift).
import type * as protoLoader from '@grpc/proto-loader';
import { loadFacadeProto, messageDescriptor as descriptorOf, methodTypeName, resolveTypeName as resolveIn, serviceDefinition, type DescriptorField, type DescriptorMessage } from '../api/server/proto';

export { protoDirectory } from '../api/server/proto';
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

/** The seed's resource types; `type: X` in a `do` file means service `XService`. */
export const SEED_TYPES = ['Node', 'Network', 'BlockStorage', 'Image', 'VirtualMachine'] as const;
export type SeedType = (typeof SEED_TYPES)[number];

let definition: protoLoader.PackageDefinition | undefined;

export function facadeDefinition(): protoLoader.PackageDefinition {
  definition ??= loadFacadeProto({ longs: String });
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
  /** For 'enum': the name of its value 0 (proto3's default, which JSON leaves out). */
  enumZero?: string;
}

const SCALARS: Record<string, FieldKind> = {
  TYPE_STRING: 'string', TYPE_BOOL: 'bool', TYPE_BYTES: 'bytes', TYPE_ENUM: 'enum',
  TYPE_INT32: 'integer', TYPE_INT64: 'integer', TYPE_SINT32: 'integer', TYPE_SINT64: 'integer', TYPE_SFIXED32: 'integer', TYPE_SFIXED64: 'integer',
  TYPE_UINT32: 'unsigned', TYPE_UINT64: 'unsigned', TYPE_FIXED32: 'unsigned', TYPE_FIXED64: 'unsigned',
  TYPE_DOUBLE: 'float', TYPE_FLOAT: 'float',
};

function messageDescriptor(fullName: string): DescriptorMessage {
  const message = descriptorOf(facadeDefinition(), fullName);
  if (!message) throw new Error(`message ${fullName} is not in the n0stack proto`);
  return message;
}

function fieldInfo(field: DescriptorField, owner: DescriptorMessage, scope: string): FieldInfo {
  const repeated = field.label === 'LABEL_REPEATED';
  if (field.type === 'TYPE_MESSAGE') {
    const nested = owner.nestedType.find((n) => n.name === field.typeName && n.options?.mapEntry);
    if (nested) {
      const value = nested.field.find((f) => f.name === 'value')!;
      return { name: field.name, kind: 'map', repeated: false, mapValue: fieldInfo(value, nested, scope) };
    }
    return { name: field.name, kind: 'message', repeated, messageType: resolveIn(facadeDefinition(), scope, field.typeName) };
  }
  const kind = SCALARS[field.type];
  if (!kind) throw new Error(`unsupported proto field type ${field.type} for ${field.name}`);
  if (kind === 'enum') {
    // Our enums are all nested in the message that uses them, as the seed's are.
    const zero = owner.enumType?.find((e) => e.name === field.typeName)?.value.find((v) => v.number === 0)?.name;
    return { name: field.name, kind, repeated, ...(zero !== undefined ? { enumZero: zero } : {}) };
  }
  return { name: field.name, kind, repeated };
}

/** The fields of a message, by proto name. */
export function messageFields(fullName: string): Map<string, FieldInfo> {
  const message = messageDescriptor(fullName);
  return new Map(message.field.map((f) => [f.name, fieldInfo(f, message, fullName)]));
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

/** The RPCs of one service (e.g. "VirtualMachineService"), in .proto order. */
export function serviceMethods(service: string): MethodInfo[] {
  let def: Record<string, ServiceMethodDefinition>;
  try { def = serviceDefinition(facadeDefinition(), service) as unknown as Record<string, ServiceMethodDefinition>; } catch { return []; }
  return Object.entries(def).map(([method, m]) => ({
    service,
    method,
    requestType: methodTypeName(facadeDefinition(), service, m.requestType.type),
    responseType: methodTypeName(facadeDefinition(), service, m.responseType.type),
    responseStream: m.responseStream,
  }));
}

/** service -> method -> its info, resolved once: FacadeClient.call asks on every call. */
const methodsByService = new Map<string, Map<string, Readonly<MethodInfo>>>();

export function methodInfo(service: string, method: string): Readonly<MethodInfo> | undefined {
  let methods = methodsByService.get(service);
  if (!methods) {
    const list = serviceMethods(service);
    methods = new Map(list.map((m) => [m.method, Object.freeze(m)]));
    // An unknown service stays uncached, so a flood of made-up names cannot grow the map.
    if (list.length) methodsByService.set(service, methods);
  }
  return methods.get(method);
}

export function serviceForType(type: SeedType): string {
  return `${type}Service`;
}
