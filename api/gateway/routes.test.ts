// The mapping table: routing, request building, the OpenAPI document and the README's table.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { match, requestOf, ROUTES } from './routes';
import { openApiDocument } from './openapi';
import { routesMarkdown } from './readme';
import { loadFacadeProto } from '../server/proto';

describe('gateway routes', () => {
  it('matches paths with parameters and verbs, and tells the allowed methods', () => {
    const boot = match('POST', '/api/v0/virtual_machine/vm-1:boot');
    expect(boot && 'route' in boot && [boot.route.rpc, boot.params]).toEqual(['BootVirtualMachine', { name: 'vm-1' }]);
    const get = match('GET', '/api/v0/virtual_machine/vm-1');
    expect(get && 'route' in get && get.route.rpc).toBe('GetVirtualMachine');
    expect(match('POST', '/api/v0/virtual_machine/vm-1:nothing')).toBeUndefined();
    const fetch = match('POST', '/api/v0/block_storage:fetch');
    expect(fetch && 'route' in fetch && fetch.route.rpc).toBe('FetchBlockStorage');
    expect(match('PATCH', '/api/v0/network/n')).toEqual({ allowed: ['GET', 'PUT', 'DELETE'] });
    expect(match('GET', '/api/v0/network/a/b')).toBeUndefined();
    expect(match('GET', '/api/v0/network/%E0%A4%A')).toBeUndefined();
  });

  it('builds the request from the body and the path parameters, which win', () => {
    const tag = match('POST', '/api/v0/image/ubuntu/tag/latest');
    if (!tag || !('route' in tag)) throw new Error('no route');
    expect(requestOf(tag.route, tag.params, { block_storage_name: 'disk', name: 'other' })).toEqual({ name: 'ubuntu', block_storage_name: 'disk', tags: ['latest'] });
    const reg = match('POST', '/api/v0/image/ubuntu/registered_block_storage/disk');
    if (!reg || !('route' in reg)) throw new Error('no route');
    expect(requestOf(reg.route, reg.params, { tags: ['a'] })).toEqual({ image_name: 'ubuntu', block_storage_name: 'disk', tags: ['a'] });
    const del = match('DELETE', '/api/v0/network/n');
    if (!del || !('route' in del)) throw new Error('no route');
    expect(requestOf(del.route, del.params, { name: 'x', extra: 1 })).toEqual({ name: 'n' });
  });

  it('documents every route, with request and response schemas from the proto', () => {
    const doc = openApiDocument(loadFacadeProto()) as any;
    for (const r of ROUTES) expect(doc.paths[r.path][r.method.toLowerCase()].operationId).toBe(`${r.service}_${r.rpc}`);
    expect(doc.components.schemas['provisioning.VirtualMachine'].properties.limit_memory_bytes).toEqual({ type: 'string', format: 'uint64' });
    expect(doc.components.schemas['provisioning.VirtualMachine'].properties.state).toEqual({ type: 'string', enum: ['UNKNOWN', 'PENDING', 'RUNNING', 'SHUTDOWN', 'PAUSED'] });
    expect(doc.components.schemas['provisioning.CreateVirtualMachineRequest'].properties.annotations).toEqual({ type: 'object', additionalProperties: { type: 'string' } });
    expect(doc.components.schemas['pool.Node'].properties.reserved_computes).toEqual({ type: 'object', additionalProperties: { $ref: '#/components/schemas/budget.Compute' } });
    expect(doc.components.schemas['deployment.Image'].properties.registered_block_storages.items).toEqual({ $ref: '#/components/schemas/deployment.Image.RegisteredBlockStorage' });
  });

  it('is the table in the README', () => {
    const readme = fs.readFileSync(path.resolve(__dirname, '..', '..', 'README.md'), 'utf8');
    expect(readme).toContain(routesMarkdown());
  });
});
