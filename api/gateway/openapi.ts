// The OpenAPI 3 document of the gateway, derived from the mapping table (routes.ts) and the
// proto's message descriptors, so a route cannot be served without being documented.
import type { PackageDefinition } from '@grpc/proto-loader';
import { messageDescriptor, methodTypeName, resolveTypeName, serviceDefinition } from '../server/proto';
import { ROUTES, WATCH_KINDS, WATCH_PATH, type Route } from './routes';

type Schema = Record<string, unknown>;

const SCALARS: Record<string, Schema> = {
  TYPE_STRING: { type: 'string' },
  TYPE_BOOL: { type: 'boolean' },
  TYPE_UINT32: { type: 'integer', format: 'uint32' },
  TYPE_INT32: { type: 'integer', format: 'int32' },
  // proto3 JSON: 64-bit integers are strings (as the seed's docs show them).
  TYPE_UINT64: { type: 'string', format: 'uint64' },
  TYPE_INT64: { type: 'string', format: 'int64' },
  TYPE_DOUBLE: { type: 'number' },
  TYPE_FLOAT: { type: 'number' },
  TYPE_BYTES: { type: 'string', format: 'byte' },
  TYPE_ENUM: { type: 'string' },
};

// Schema names as in the seed's packages, without the common prefix: pool.Node, budget.Compute.
const schemaName = (fullName: string) => fullName.replace(/^n0stack\./, '').replace(/^google\.protobuf\./, 'google.');

function messageSchema(definition: PackageDefinition, fullName: string, schemas: Record<string, Schema>): Schema {
  const key = schemaName(fullName);
  if (schemas[key]) return { $ref: `#/components/schemas/${key}` };
  const message = messageDescriptor(definition, fullName);
  schemas[key] = { type: 'object' };
  if (!message) return { $ref: `#/components/schemas/${key}` };
  const properties: Record<string, Schema> = {};
  const enumSchema = (typeName: string): Schema => {
    const values = message.enumType?.find((e) => e.name === typeName)?.value.map((v) => v.name);
    return values ? { type: 'string', enum: values } : { type: 'string' };
  };
  for (const field of message.field) {
    let schema: Schema;
    if (field.type === 'TYPE_MESSAGE') {
      const nested = message.nestedType?.find((n) => n.name === field.typeName);
      if (nested?.options?.mapEntry) {
        const value = nested.field.find((f) => f.name === 'value')!;
        properties[field.name] = { type: 'object', additionalProperties: value.type === 'TYPE_MESSAGE' ? messageSchema(definition, resolveTypeName(definition, fullName, value.typeName), schemas) : SCALARS[value.type] ?? {} };
        continue;
      }
      schema = messageSchema(definition, resolveTypeName(definition, fullName, field.typeName), schemas);
    } else if (field.type === 'TYPE_ENUM') {
      schema = enumSchema(field.typeName);
    } else {
      schema = SCALARS[field.type] ?? {};
    }
    properties[field.name] = field.label === 'LABEL_REPEATED' ? { type: 'array', items: schema } : schema;
  }
  schemas[key] = { type: 'object', properties };
  return { $ref: `#/components/schemas/${key}` };
}

const toOpenApiPath = (path: string) => path;

function operation(route: Route, definition: PackageDefinition, schemas: Record<string, Schema>): Schema {
  const method = (serviceDefinition(definition, route.service) as unknown as Record<string, { requestType: { type: { name: string } }; responseType: { type: { name: string } } }>)[route.rpc];
  if (!method) throw new Error(`route ${route.method} ${route.path}: ${route.service} has no RPC ${route.rpc}`);
  const requestName = methodTypeName(definition, route.service, method.requestType.type);
  const responseName = methodTypeName(definition, route.service, method.responseType.type);
  const parameters = [...route.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name, in: 'path', required: true, schema: { type: 'string' },
    description: `request field ${(route.params?.[name] ?? name).replace(/\[\]$/, ' (its only element)')}`,
  }));
  return {
    operationId: `${route.service}_${route.rpc}`,
    summary: `${route.service}.${route.rpc}`,
    tags: [route.service],
    parameters,
    ...(route.body ? { requestBody: { required: false, content: { 'application/json': { schema: messageSchema(definition, requestName, schemas) } } } } : {}),
    responses: {
      200: { description: 'OK', content: { 'application/json': { schema: messageSchema(definition, responseName, schemas) } } },
      default: { description: 'the gRPC status, mapped as grpc-gateway maps it', content: { 'application/json': { schema: { $ref: '#/components/schemas/Status' } } } },
    },
  };
}

export function openApiDocument(definition: PackageDefinition): Schema {
  const schemas: Record<string, Schema> = {
    Status: { type: 'object', properties: { code: { type: 'integer', description: 'gRPC status code' }, message: { type: 'string' } } },
    'google.Empty': { type: 'object' },
  };
  const paths: Record<string, Record<string, Schema>> = {};
  for (const route of ROUTES) {
    const p = toOpenApiPath(route.path);
    paths[p] ??= {};
    paths[p][route.method.toLowerCase()] = operation(route, definition, schemas);
  }
  paths[WATCH_PATH] = {
    get: {
      operationId: 'Watch',
      summary: 'Server-Sent Events of one kind: a `sync` event with the list, then ADDED/MODIFIED/DELETED with the message (for `event`: the Kubernetes-shaped Event documents)',
      parameters: [{ name: 'kind', in: 'path', required: true, schema: { type: 'string', enum: [...Object.keys(WATCH_KINDS), 'event'] } }],
      responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } } },
    },
  };
  return {
    openapi: '3.0.3',
    info: { title: 'n0stack REST gateway', version: 'v0', description: 'The seed services over HTTP/JSON, with the later n0proto routes. Authenticate with `Authorization: Bearer <token>`, or a session cookie from POST /api/v0/session plus the X-CSRF-Token header on every mutating request.' },
    components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
