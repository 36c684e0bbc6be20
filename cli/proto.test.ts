import { messageFields, methodInfo, serviceMethods } from './proto';

describe('facade proto as data', () => {
  it('lists the seed RPC names of a service with their request messages', () => {
    const methods = serviceMethods('VirtualMachineService');
    expect(methods.map((m) => m.method)).toEqual([
      'CreateVirtualMachine', 'ListVirtualMachines', 'GetVirtualMachine', 'UpdateVirtualMachine', 'DeleteVirtualMachine',
      'BootVirtualMachine', 'RebootVirtualMachine', 'ShutdownVirtualMachine', 'SaveVirtualMachine', 'OpenConsole',
    ]);
    expect(methodInfo('VirtualMachineService', 'DeleteVirtualMachine')).toMatchObject({
      requestType: 'n0stack.provisioning.DeleteVirtualMachineRequest', responseType: 'google.protobuf.Empty', responseStream: false,
    });
    expect(methodInfo('ResourceService', 'Watch')?.responseStream).toBe(true);
    expect(serviceMethods('NoSuchService')).toEqual([]);
  });

  it('describes fields: scalars, repeated, maps and nested messages', () => {
    const fields = messageFields('n0stack.provisioning.CreateVirtualMachineRequest');
    expect(fields.get('name')).toEqual({ name: 'name', kind: 'string', repeated: false });
    expect(fields.get('limit_memory_bytes')).toEqual({ name: 'limit_memory_bytes', kind: 'unsigned', repeated: false });
    expect(fields.get('block_storage_names')).toEqual({ name: 'block_storage_names', kind: 'string', repeated: true });
    expect(fields.get('annotations')).toEqual({ name: 'annotations', kind: 'map', repeated: false, mapValue: { name: 'value', kind: 'string', repeated: false } });
    expect(fields.get('nics')).toEqual({ name: 'nics', kind: 'message', repeated: true, messageType: 'n0stack.provisioning.VirtualMachineNIC' });
    expect(messageFields('n0stack.pool.Node').get('reserved_computes')?.mapValue).toMatchObject({ kind: 'message', messageType: 'n0stack.budget.Compute' });
    expect(messageFields('n0stack.pool.Node').get('state')).toMatchObject({ kind: 'enum' });
    expect(messageFields('n0stack.pool.Node').get('conditions')).toMatchObject({ kind: 'message', messageType: 'n0stack.Condition' });
    expect(messageFields('n0stack.deployment.Image').get('registered_block_storages')).toMatchObject({ messageType: 'n0stack.deployment.Image.RegisteredBlockStorage' });
    expect(messageFields('n0stack.deployment.Image.RegisteredBlockStorage').get('registered_at')).toMatchObject({ kind: 'message', messageType: 'google.protobuf.Timestamp' });
  });

  it('names each type by its package, as the seed does; a response of another package too', () => {
    expect(methodInfo('NodeService', 'ReserveCompute')).toMatchObject({ requestType: 'n0stack.pool.ReserveComputeRequest', responseType: 'n0stack.pool.Node' });
    expect(methodInfo('ImageService', 'GenerateBlockStorage')).toMatchObject({ requestType: 'n0stack.deployment.GenerateBlockStorageRequest', responseType: 'n0stack.provisioning.BlockStorage' });
    expect(methodInfo('BlockStorageService', 'DownloadBlockStorage')?.responseType).toBe('n0stack.provisioning.DownloadBlockStorageResponse');
    expect(methodInfo('ResourceService', 'Get')?.requestType).toBe('n0stack.GetDocumentRequest');
  });
});
