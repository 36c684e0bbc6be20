import { messageFields, methodInfo, serviceMethods } from './proto';

describe('facade proto as data', () => {
  it('lists the seed RPC names of a service with their request messages', () => {
    const methods = serviceMethods('VirtualMachineService');
    expect(methods.map((m) => m.method)).toEqual([
      'CreateVirtualMachine', 'ListVirtualMachines', 'GetVirtualMachine', 'UpdateVirtualMachine', 'DeleteVirtualMachine',
      'BootVirtualMachine', 'RebootVirtualMachine', 'ShutdownVirtualMachine', 'SaveVirtualMachine', 'OpenConsole',
    ]);
    expect(methodInfo('VirtualMachineService', 'DeleteVirtualMachine')).toMatchObject({
      requestType: 'n0stack.DeleteVirtualMachineRequest', responseType: 'google.protobuf.Empty', responseStream: false,
    });
    expect(methodInfo('ResourceService', 'Watch')?.responseStream).toBe(true);
    expect(serviceMethods('NoSuchService')).toEqual([]);
  });

  it('describes fields: scalars, repeated, maps and nested messages', () => {
    const fields = messageFields('n0stack.CreateVirtualMachineRequest');
    expect(fields.get('name')).toEqual({ name: 'name', kind: 'string', repeated: false });
    expect(fields.get('limit_memory_bytes')).toEqual({ name: 'limit_memory_bytes', kind: 'unsigned', repeated: false });
    expect(fields.get('block_storage_names')).toEqual({ name: 'block_storage_names', kind: 'string', repeated: true });
    expect(fields.get('annotations')).toEqual({ name: 'annotations', kind: 'map', repeated: false, mapValue: { name: 'value', kind: 'string', repeated: false } });
    expect(fields.get('nics')).toEqual({ name: 'nics', kind: 'message', repeated: true, messageType: 'n0stack.VirtualMachineNIC' });
    expect(messageFields('n0stack.Node').get('reserved_computes')?.mapValue).toMatchObject({ kind: 'message', messageType: 'n0stack.Compute' });
    expect(messageFields('n0stack.RegisteredBlockStorage').get('registered_at')).toMatchObject({ kind: 'message', messageType: 'google.protobuf.Timestamp' });
  });
});
