import { addressObject, seedHolder, vmHolder } from '../addresses';
import type { Network, VirtualMachine } from '../types';
import { networkStrategy as s } from './network';

const net = (spec: Network['spec'], reserved?: Record<string, object>): Network =>
  ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: 'net1' }, spec, status: reserved ? { reserved_network_interfaces: reserved } : undefined } as Network);
const vm = (name: string, networks: string[]): VirtualMachine =>
  ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 1, nics: networks.map((network_name) => ({ network_name })) } } as VirtualMachine);
const error = (fn: () => void) => { try { fn(); } catch (err) { return { code: (err as any).code, field: (err as any).field, message: (err as Error).message }; } return undefined; };

describe('Network admission', () => {
  it('defaults the finalizer and refuses a spec without a cidr or with a gateway outside it, naming the field', () => {
    const n = net({ ipv4_cidr: '10.0.0.0/24' });
    s.prepareForCreate(n);
    expect(n.metadata.finalizers).toEqual(['n0stack.io/network']);
    expect(error(() => s.validateCreate(n, () => undefined))).toBeUndefined();
    expect(error(() => s.validateCreate(net({}), () => undefined))).toMatchObject({ code: 'InvalidArgument', field: 'ipv4_cidr' });
    expect(error(() => s.validateCreate(net({ ipv4_cidr: '10.0.0.0/24', gateway_ipv4: '10.0.1.1' }), () => undefined))).toMatchObject({ code: 'InvalidArgument', field: 'gateway_ipv4' });
  });

  const lent = { blockStorages: [], virtualMachines: [], networkAddresses: [addressObject('net1', 'ipv4', '10.77.0.5', vmHolder({ metadata: { name: 'vm1', uid: 'u' } }, 0)), addressObject('other', 'ipv4', '10.77.0.6', seedHolder('elsewhere'))] };

  it('a cidr is immutable while the Network lends addresses, free otherwise; other fields may change', () => {
    const n = net({ ipv4_cidr: '10.77.0.0/24' });
    expect(s.updateNeedsWorld!(n, net({ ipv4_cidr: '10.88.0.0/24' }))).toBe(true);
    expect(s.updateNeedsWorld!(n, net({ ipv4_cidr: '10.77.0.0/24', gateway_ipv4: '10.77.0.254' }))).toBe(false);
    expect(error(() => s.validateUpdate(n, net({ ipv4_cidr: '10.88.0.0/24' }), undefined, lent))).toMatchObject({ code: 'FailedPrecondition', field: 'ipv4_cidr', message: expect.stringMatching(/\(vm1\.0\).*10\.77\.0\.0\/24 -> 10\.88\.0\.0\/24/) });
    expect(error(() => s.validateUpdate(n, net({ ipv4_cidr: '10.88.0.0/24' }), undefined, { ...lent, networkAddresses: lent.networkAddresses.slice(1) }))).toBeUndefined();
  });

  it('a Network stored by the previous version (its status lists the interfaces) keeps the rule until migrated', () => {
    const reserved = net({ ipv4_cidr: '10.77.0.0/24' }, { 'vm1.0': { ipv4_address: '10.77.0.5' } });
    expect(error(() => s.validateUpdate(reserved, net({ ipv4_cidr: '10.88.0.0/24' })))).toMatchObject({ code: 'FailedPrecondition', field: 'ipv4_cidr', message: expect.stringMatching(/vm1\.0.*10\.77\.0\.0\/24 -> 10\.88\.0\.0\/24/) });
    expect(error(() => s.validateUpdate(reserved, net({ ipv4_cidr: '10.77.0.0/24', ipv6_cidr: 'fd00::/64' })))).toMatchObject({ code: 'FailedPrecondition', field: 'ipv6_cidr' });
    expect(error(() => s.validateUpdate(reserved, net({ ipv4_cidr: '10.77.0.0/24', gateway_ipv4: '10.77.0.254' })))).toBeUndefined();
    expect(error(() => s.validateUpdate(net({ ipv4_cidr: '10.77.0.0/24' }, {}), net({ ipv4_cidr: '10.88.0.0/24' })))).toBeUndefined();
  });

  it('dependants: VMs naming it and the interfaces it lends (a VM\'s too: its addresses can outlive it), each once; delete is refused while there are any', () => {
    const n = net({ ipv4_cidr: '10.0.0.0/24' }, { 'old.0': {} });
    const h = vmHolder({ metadata: { name: 'vm1', uid: 'u' } }, 0);
    const deps = s.dependants(n, { blockStorages: [], virtualMachines: [vm('vm1', ['net1']), vm('vm2', ['other'])], networkAddresses: [
      addressObject('net1', 'ipv4', '10.0.0.2', h), addressObject('net1', 'mac', '02:00:00:00:00:01', h), addressObject('net1', 'ipv4', '10.0.0.3', seedHolder('port-a')),
    ] });
    expect(deps).toEqual([
      { kind: 'VirtualMachine', name: 'vm1', why: 'nics[0] is on it' },
      { kind: 'NetworkInterface', name: 'old.0', why: 'reserved on it' },
      { kind: 'NetworkInterface', name: 'port-a', why: 'reserved on it' },
      { kind: 'NetworkInterface', name: 'vm1.0', why: 'reserved on it' },
    ]);
    expect(error(() => s.validateDelete(n, deps))).toMatchObject({ code: 'FailedPrecondition', message: expect.stringMatching(/reserved interfaces: old\.0, port-a, vm1\.0/) });
    const unreserved = net({ ipv4_cidr: '10.0.0.0/24' });
    expect(error(() => s.validateDelete(unreserved, [{ kind: 'VirtualMachine', name: 'vm3', why: 'nics[0] is on it' }]))).toMatchObject({ message: expect.stringMatching(/VirtualMachine "vm3"/) });
    expect(error(() => s.validateDelete(unreserved, []))).toBeUndefined();
  });
});
