// The REST/JSON gateway's one mapping table, after grpc-gateway's `google.api.http` annotations
// in the later n0proto (/api/v0/...). Routing (match) and the OpenAPI document (openapi.ts) are
// both derived from it; no route is written by hand anywhere else.

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface Route {
  method: HttpMethod;
  /** `/api/v0/...` with `{param}` segments and an optional `:verb` suffix on the last one. */
  path: string;
  service: 'NodeService' | 'NetworkService' | 'BlockStorageService' | 'ImageService' | 'VirtualMachineService';
  rpc: string;
  /**
   * Path parameter -> request field, when they differ (default: the field of the same name).
   * A field ending in `[]` is repeated: the parameter becomes its only element.
   */
  params?: Record<string, string>;
  /** The JSON body is the request (grpc-gateway's `body: "*"`); path parameters win over it. */
  body?: boolean;
}

export const ROUTES: readonly Route[] = [
  { method: 'GET', path: '/api/v0/node', service: 'NodeService', rpc: 'ListNodes' },
  { method: 'GET', path: '/api/v0/node/{name}', service: 'NodeService', rpc: 'GetNode' },

  { method: 'GET', path: '/api/v0/network', service: 'NetworkService', rpc: 'ListNetworks' },
  { method: 'GET', path: '/api/v0/network/{name}', service: 'NetworkService', rpc: 'GetNetwork' },
  { method: 'PUT', path: '/api/v0/network/{name}', service: 'NetworkService', rpc: 'ApplyNetwork', body: true },
  { method: 'DELETE', path: '/api/v0/network/{name}', service: 'NetworkService', rpc: 'DeleteNetwork' },

  { method: 'GET', path: '/api/v0/block_storage', service: 'BlockStorageService', rpc: 'ListBlockStorages' },
  { method: 'GET', path: '/api/v0/block_storage/{name}', service: 'BlockStorageService', rpc: 'GetBlockStorage' },
  { method: 'POST', path: '/api/v0/block_storage', service: 'BlockStorageService', rpc: 'CreateBlockStorage', body: true },
  { method: 'POST', path: '/api/v0/block_storage:fetch', service: 'BlockStorageService', rpc: 'FetchBlockStorage', body: true },
  { method: 'POST', path: '/api/v0/block_storage:copy', service: 'BlockStorageService', rpc: 'CopyBlockStorage', body: true },
  { method: 'DELETE', path: '/api/v0/block_storage/{name}', service: 'BlockStorageService', rpc: 'DeleteBlockStorage' },

  { method: 'GET', path: '/api/v0/virtual_machine', service: 'VirtualMachineService', rpc: 'ListVirtualMachines' },
  { method: 'GET', path: '/api/v0/virtual_machine/{name}', service: 'VirtualMachineService', rpc: 'GetVirtualMachine' },
  { method: 'POST', path: '/api/v0/virtual_machine', service: 'VirtualMachineService', rpc: 'CreateVirtualMachine', body: true },
  { method: 'DELETE', path: '/api/v0/virtual_machine/{name}', service: 'VirtualMachineService', rpc: 'DeleteVirtualMachine' },
  { method: 'POST', path: '/api/v0/virtual_machine/{name}:boot', service: 'VirtualMachineService', rpc: 'BootVirtualMachine', body: true },
  { method: 'POST', path: '/api/v0/virtual_machine/{name}:reboot', service: 'VirtualMachineService', rpc: 'RebootVirtualMachine', body: true },
  { method: 'POST', path: '/api/v0/virtual_machine/{name}:shutdown', service: 'VirtualMachineService', rpc: 'ShutdownVirtualMachine', body: true },
  { method: 'POST', path: '/api/v0/virtual_machine/{name}:open_console', service: 'VirtualMachineService', rpc: 'OpenConsole', body: true },

  { method: 'GET', path: '/api/v0/image', service: 'ImageService', rpc: 'ListImages' },
  { method: 'GET', path: '/api/v0/image/{name}', service: 'ImageService', rpc: 'GetImage' },
  { method: 'PUT', path: '/api/v0/image/{name}', service: 'ImageService', rpc: 'ApplyImage', body: true },
  { method: 'DELETE', path: '/api/v0/image/{name}', service: 'ImageService', rpc: 'DeleteImage' },
  { method: 'POST', path: '/api/v0/image/{image_name}/registered_block_storage/{block_storage_name}', service: 'ImageService', rpc: 'RegisterBlockStorage', body: true },
  { method: 'DELETE', path: '/api/v0/image/{image_name}/registered_block_storage/{block_storage_name}', service: 'ImageService', rpc: 'UnregisterBlockStorage' },
  { method: 'POST', path: '/api/v0/image/{name}/tag/{tag}', service: 'ImageService', rpc: 'TagImage', params: { tag: 'tags[]' }, body: true },
  { method: 'DELETE', path: '/api/v0/image/{name}/tag/{tag}', service: 'ImageService', rpc: 'UntagImage' },
];

/** Server-Sent Events of one kind (not an RPC: the store's watch, rendered as the kind's message). */
export const WATCH_KINDS = {
  node: 'Node', network: 'Network', block_storage: 'BlockStorage', image: 'Image', virtual_machine: 'VirtualMachine',
} as const;
export const WATCH_PATH = '/api/v0/watch/{kind}';

interface Compiled { route: Route; regex: RegExp; names: string[] }

function compile(route: Route): Compiled {
  const names: string[] = [];
  // Names are DNS-1123 widened with '_' (api/names.ts): no '/' nor ':', so a segment cannot hide a verb.
  const source = route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_m, name: string) => {
    names.push(name);
    return '([^/:]+)';
  });
  return { route, regex: new RegExp(`^${source}$`), names };
}

const COMPILED = ROUTES.map(compile);

export type Match =
  | { route: Route; params: Record<string, string> }
  | { allowed: HttpMethod[] }
  | undefined;

/** The route of a request, or the methods the path allows (405), or undefined (404). */
export function match(method: string, pathname: string): Match {
  const allowed: HttpMethod[] = [];
  for (const c of COMPILED) {
    const m = c.regex.exec(pathname);
    if (!m) continue;
    if (c.route.method !== method) { allowed.push(c.route.method); continue; }
    const params: Record<string, string> = {};
    try {
      c.names.forEach((name, i) => { params[name] = decodeURIComponent(m[i + 1]); });
    } catch {
      return undefined;
    }
    return { route: c.route, params };
  }
  return allowed.length ? { allowed } : undefined;
}

/** The request message of a route: the body (when it takes one) with the path parameters set. */
export function requestOf(route: Route, params: Record<string, string>, body: unknown): Record<string, unknown> {
  const request: Record<string, unknown> = route.body && body && typeof body === 'object' && !Array.isArray(body) ? { ...(body as object) } : {};
  for (const [param, value] of Object.entries(params)) {
    const field = route.params?.[param] ?? param;
    if (field.endsWith('[]')) request[field.slice(0, -2)] = [value];
    else request[field] = value;
  }
  return request;
}
