import { addressName, encodeAddress, parseAddressName, renderReservedInterfaces, addressObject, vmHolder, seedHolder, heldBy, type AddressFamily } from './addresses';
import { freeIPv4s, parseIPv4Cidr } from './logic/ipam';
import type { Network } from './types';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

describe('address names', () => {
  it('names an address by its value within its network, as a DNS-1123 subdomain', () => {
    expect(addressName('net1', 'ipv4', '10.0.0.5')).toBe('net1.ipv4.10.0.0.5');
    expect(addressName('net1', 'ipv6', 'fd00::5')).toBe('net1.ipv6.fd000000000000000000000000000005');
    expect(addressName('net1', 'ipv6', 'FD00:0:0::0005')).toBe('net1.ipv6.fd000000000000000000000000000005');
    expect(addressName('net1', 'mac', '02:AB:cd:00:00:01')).toBe('net1.mac.02abcd000001');
    expect(addressName('net1', 'mac', '02-ab-cd-00-00-01')).toBe('net1.mac.02abcd000001');
    for (const n of [addressName('a.b-c', 'ipv4', '192.168.0.1'), addressName('a.b-c', 'ipv6', '::1'), addressName('a.b-c', 'mac', '02:00:00:00:00:01')]) {
      expect(n).toMatch(DNS_SUBDOMAIN);
      expect(n.length).toBeLessThanOrEqual(253);
    }
  });

  it('refuses what is not an address of its family, a bad network name, and names that would pass 253 characters, naming the field', () => {
    expect(() => addressName('net1', 'ipv4', '10.0.0.256')).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    expect(() => addressName('net1', 'ipv4', '010.0.0.1')).toThrow(/not a ipv4 address/);
    expect(() => addressName('net1', 'ipv6', '10.0.0.1')).toThrow(/not a ipv6/);
    expect(() => addressName('net1', 'mac', '03:00:00:00:00:01')).toThrow(/not a mac/); // multicast
    expect(() => addressName('Net/1', 'ipv4', '10.0.0.1', 'nics[0].network_name')).toThrow(expect.objectContaining({ field: 'nics[0].network_name' }));
    const longest = 'n'.repeat(253 - '.ipv6.'.length - 32);
    expect(addressName(longest, 'ipv6', '::1')).toHaveLength(253);
    expect(() => addressName(`${longest}x`, 'ipv6', '::1')).toThrow(/at most 215 characters/);
    expect(() => addressName(`${longest}x`, 'ipv4', '10.0.0.1')).toThrow(/too long/);
  });

  it('is injective: parseAddressName inverts it, also for network names that look like addresses', () => {
    const networks = ['n', 'n.ipv4.10', 'n.ipv4.10.0.0.1', 'x.mac.02abcd000001', 'x.ipv6', 'debug_ipv6', '1.2.3.4', 'a-b.c'];
    const values: [AddressFamily, string][] = [['ipv4', '10.0.0.1'], ['ipv4', '0.0.0.0'], ['ipv4', '255.255.255.255'], ['ipv6', '::'], ['ipv6', 'fd00::1'],
      ['ipv6', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], ['mac', '02:00:00:00:00:01'], ['mac', 'fe:ff:ff:ff:ff:ff']];
    const seen = new Map<string, string>();
    for (const network of networks) {
      for (const [family, text] of values) {
        const name = addressName(network, family, text);
        const what = `${network}|${family}|${encodeAddress(family, text)}`;
        expect(seen.get(name) ?? what).toBe(what);
        seen.set(name, what);
        expect(parseAddressName(name)).toEqual({ network, family, value: encodeAddress(family, text) });
      }
    }
    // Random addresses: distinct values give distinct names.
    let x = 12345;
    const rnd = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 2000; i++) {
      const v4 = [rnd() % 256, rnd() % 256, rnd() % 256, rnd() % 256].join('.');
      const name = addressName('net.ipv4.1', 'ipv4', v4);
      expect(parseAddressName(name)).toEqual({ network: 'net.ipv4.1', family: 'ipv4', value: v4 });
    }
    for (const bad of ['net1', 'net1.ipv4.10.0.0', 'net1.ipv6.abc', 'net1.mac.03abcd000001', 'net1.ipv4.010.0.0.1', '.ipv4.10.0.0.1']) expect(parseAddressName(bad)).toBeUndefined();
  });
});

describe('holders and the seed view', () => {
  const vm = (name: string, uid: string) => ({ metadata: { name, uid } });
  it('a VM holds by uid: a namesake does not inherit its addresses; a seed reservation by its key', () => {
    const a = addressObject('net1', 'ipv4', '10.0.0.2', vmHolder(vm('vm1', 'u1'), 0));
    expect(a.metadata.labels).toEqual({ 'n0stack.io/network': 'net1' });
    expect(a.spec).toEqual({ network_name: 'net1', family: 'ipv4', address: '10.0.0.2', holder_key: 'vm1.0', virtual_machine_name: 'vm1', virtual_machine_uid: 'u1', nic_index: 0 });
    expect(heldBy(a, vmHolder(vm('vm1', 'u1'), 0))).toBe(true);
    expect(heldBy(a, vmHolder(vm('vm1', 'u2'), 0))).toBe(false);
    expect(heldBy(a, seedHolder('vm1.0'))).toBe(false);
    expect(addressObject('n'.repeat(64), 'ipv4', '10.0.0.2', seedHolder('p')).metadata.labels).toBeUndefined();
  });

  it('renders reserved_network_interfaces in the seed shape from the objects (and an unmigrated list)', () => {
    const net = { apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: 'net1' }, spec: {}, status: { reserved_network_interfaces: { old: { ipv4_address: '10.0.0.9' } } } } as Network;
    const h = vmHolder(vm('vm1', 'u1'), 0);
    const objects = [
      addressObject('net1', 'ipv4', '10.0.0.2', h), addressObject('net1', 'mac', '02:00:00:00:00:01', h), addressObject('net1', 'ipv6', 'fd00::2', h),
      addressObject('net1', 'ipv4', '10.0.0.3', seedHolder('port-a'), { owner: 'me' }),
      addressObject('other', 'ipv4', '10.0.0.4', seedHolder('elsewhere')),
    ];
    expect(renderReservedInterfaces(net, objects)).toEqual({
      old: { ipv4_address: '10.0.0.9' },
      'vm1.0': { hardware_address: '02:00:00:00:00:01', ipv4_address: '10.0.0.2', ipv6_address: 'fd00::2', annotations: { 'n0core/provisioning/virtual_machine/virtual_machine/reserved_by': 'vm1' } },
      'port-a': { ipv4_address: '10.0.0.3', annotations: { owner: 'me' } },
    });
  });

  it('offers the free usable IPv4 addresses lowest first, never the network, broadcast or gateway', () => {
    const cidr = parseIPv4Cidr('10.0.0.0/29');
    expect([...freeIPv4s(cidr, '10.0.0.1', new Set(['10.0.0.3']))]).toEqual(['10.0.0.2', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    expect([...freeIPv4s(parseIPv4Cidr('10.0.0.0/31'), undefined, new Map())]).toEqual(['10.0.0.0', '10.0.0.1']);
  });
});
