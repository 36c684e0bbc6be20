import { isN0Error } from '../errors';
import {
  allocateIPv4, allocateIPv6, allocateMac, eui64, formatIPv6, generateMac, parseIPv4, parseIPv4Cidr,
  parseIPv6, parseIPv6Cidr, usableIPv4, validateMac,
} from './ipam';

function failure(fn: () => unknown): { code: string; message: string; field?: string } {
  try { fn(); } catch (err) {
    if (isN0Error(err)) return { code: err.code, message: err.message, field: err.field };
    throw err;
  }
  throw new Error('expected a failure');
}

describe('IPv4', () => {
  it('parses addresses strictly', () => {
    expect(parseIPv4('192.168.0.1')).toBe(0xc0a80001);
    expect(parseIPv4('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '010.0.0.1', 'a.b.c.d', '', ' 1.2.3.4']) expect(parseIPv4(bad)).toBeUndefined();
  });

  it('parses CIDRs and rejects bad ones naming ipv4_cidr', () => {
    expect(parseIPv4Cidr('192.168.100.0/24')).toMatchObject({ prefix: 24, network: 0xc0a86400, broadcast: 0xc0a864ff });
    for (const [bad, why] of [['192.168.0.1/24', 'host bits are set; the network is 192.168.0.0/24'], ['192.168.0.0', 'prefix'], ['192.168.0.0/33', '0..32'], ['300.0.0.0/8', 'not an IPv4'], ['10.0.0.0/8/1', 'prefix']]) {
      const f = failure(() => parseIPv4Cidr(bad));
      expect(f.code).toBe('InvalidArgument');
      expect(f.field).toBe('ipv4_cidr');
      expect(f.message).toContain('ipv4_cidr');
      expect(f.message).toContain(why);
    }
  });

  it('iterates usable addresses, skipping network, broadcast and gateway', () => {
    expect([...usableIPv4(parseIPv4Cidr('10.0.0.0/29'), '10.0.0.1')]).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    expect([...usableIPv4(parseIPv4Cidr('10.0.0.0/31'))]).toEqual(['10.0.0.0', '10.0.0.1']);
    expect([...usableIPv4(parseIPv4Cidr('10.0.0.7/32'))]).toEqual(['10.0.0.7']);
    expect([...usableIPv4(parseIPv4Cidr('255.255.255.252/30'))]).toEqual(['255.255.255.253', '255.255.255.254']);
  });

  it('allocates the lowest free address', () => {
    expect(allocateIPv4('192.168.0.0/24', new Set())).toBe('192.168.0.1');
    expect(allocateIPv4('192.168.0.0/24', new Set(['192.168.0.2']), undefined, { gateway: '192.168.0.1' })).toBe('192.168.0.3');
    expect(allocateIPv4('192.168.0.0/24', new Set(['192.168.0.1', '192.168.0.3']))).toBe('192.168.0.2');
  });

  it('honours a requested address that is inside, usable and free', () => {
    const field = 'nics[0].ipv4_address';
    expect(allocateIPv4('192.168.0.0/24', new Set(['192.168.0.1']), '192.168.0.100', { field })).toBe('192.168.0.100');
    const cases: [string, string, string][] = [
      ['10.0.0.5', 'InvalidArgument', 'nics[0].ipv4_address 10.0.0.5 is outside network lan (192.168.0.0/24)'],
      ['192.168.0.0', 'InvalidArgument', 'nics[0].ipv4_address 192.168.0.0 is the network address of network lan (192.168.0.0/24)'],
      ['192.168.0.255', 'InvalidArgument', 'nics[0].ipv4_address 192.168.0.255 is the broadcast address of network lan (192.168.0.0/24)'],
      ['192.168.0.254', 'InvalidArgument', 'nics[0].ipv4_address 192.168.0.254 is the gateway of network lan'],
      ['192.168.0.7', 'FailedPrecondition', 'nics[0].ipv4_address 192.168.0.7 is already in use in network lan by vm2/0'],
      ['192.168.0.x', 'InvalidArgument', 'nics[0].ipv4_address "192.168.0.x" is not an IPv4 address'],
    ];
    for (const [requested, code, message] of cases) {
      expect(failure(() => allocateIPv4('192.168.0.0/24', new Map([['192.168.0.7', 'vm2/0']]), requested, { field, network: 'lan', gateway: '192.168.0.254' })))
        .toEqual({ code, message, field });
    }
  });

  it('reports an exhausted pool', () => {
    const f = failure(() => allocateIPv4('10.0.0.0/30', new Set(['10.0.0.2']), undefined, { network: 'tiny', gateway: '10.0.0.1' }));
    expect(f).toMatchObject({ code: 'FailedPrecondition', message: 'network tiny has no free IPv4 address (10.0.0.0/30)' });
  });

  it('allocates 254 distinct addresses in a /24 and then fails', () => {
    const taken = new Set<string>();
    for (let i = 0; i < 254; i++) taken.add(allocateIPv4('172.16.5.0/24', taken));
    expect(taken.size).toBe(254);
    expect(failure(() => allocateIPv4('172.16.5.0/24', taken)).code).toBe('FailedPrecondition');
  });
});

describe('MAC', () => {
  it('generates stable locally administered unicast MACs', () => {
    const a = generateMac('lan/vm1/0');
    expect(a).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(generateMac('lan/vm1/0')).toBe(a);
    expect(generateMac('lan/vm1/1')).not.toBe(a);
    const b = generateMac('lan/vm1/0', new Set([a]));
    expect(b).not.toBe(a);
    expect(b).toMatch(/^02:/);
  });

  it('validates requested MACs', () => {
    expect(validateMac('52:54:00:AB:cd:01')).toBe('52:54:00:ab:cd:01');
    expect(validateMac('02-00-00-00-00-01')).toBe('02:00:00:00:00:01');
    expect(validateMac('020000000001')).toBe('02:00:00:00:00:01');
    const field = 'nics[1].hardware_address';
    expect(failure(() => validateMac('01:00:5e:00:00:01', field))).toMatchObject({ code: 'InvalidArgument', field, message: expect.stringContaining('multicast') });
    expect(failure(() => validateMac('00:00:00:00:00:00', field)).message).toContain('all-zero');
    expect(failure(() => validateMac('02:00:00:00:00', field)).message).toContain('not a MAC address');
    expect(failure(() => validateMac('02:00-00:00:00:01', field)).code).toBe('InvalidArgument');
  });

  it('allocates a requested MAC only when free', () => {
    expect(allocateMac('s', new Set(), '02:AA:00:00:00:01')).toBe('02:aa:00:00:00:01');
    expect(failure(() => allocateMac('s', new Set(['02:aa:00:00:00:01']), '02:AA:00:00:00:01', 'nics[0].hardware_address')))
      .toEqual({ code: 'FailedPrecondition', field: 'nics[0].hardware_address', message: 'nics[0].hardware_address 02:aa:00:00:00:01 is already in use on this network' });
    expect(allocateMac('s', new Set())).toBe(generateMac('s'));
  });
});

describe('IPv6', () => {
  it('parses and formats per RFC 5952', () => {
    const cases: [string, string][] = [
      ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['fe80::', 'fe80::'],
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
      ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
      ['2001:db8::1:0', '2001:db8::1:0'],
    ];
    for (const [input, out] of cases) expect(formatIPv6(parseIPv6(input)!)).toBe(out);
    for (const bad of ['1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'g::1', ':::', '::1.2.3', '']) expect(parseIPv6(bad)).toBeUndefined();
  });

  it('parses /64 CIDRs and rejects host bits', () => {
    expect(parseIPv6Cidr('fd00:1::/64').prefix).toBe(64);
    expect(failure(() => parseIPv6Cidr('fd00:1::5/64'))).toMatchObject({ code: 'InvalidArgument', field: 'ipv6_cidr', message: expect.stringContaining('the network is fd00:1::/64') });
    expect(failure(() => parseIPv6Cidr('fd00:1::/129')).field).toBe('ipv6_cidr');
  });

  it('derives EUI-64 addresses from the MAC in a /64', () => {
    expect(eui64('52:54:00:12:34:56').toString(16)).toBe('505400fffe123456');
    expect(allocateIPv6('fd00:1::/64', new Set(), undefined, { mac: '52:54:00:12:34:56' })).toBe('fd00:1::5054:ff:fe12:3456');
    expect(allocateIPv6('2001:db8:1:2::/64', new Set(), undefined, { mac: '02:00:00:00:00:01' })).toBe('2001:db8:1:2:0:ff:fe00:1'); // a single zero group is not shortened (RFC 5952 4.2.2)
    expect(failure(() => allocateIPv6('fd00::/48', new Set(), undefined, { mac: '02:00:00:00:00:01', field: 'nics[0].ipv6_address' })))
      .toMatchObject({ code: 'FailedPrecondition', field: 'nics[0].ipv6_address', message: expect.stringContaining('need a /64') });
  });

  it('validates and reserves a requested address', () => {
    const field = 'nics[0].ipv6_address';
    expect(allocateIPv6('fd00:1::/64', new Set(), 'FD00:1::0010', { field })).toBe('fd00:1::10');
    expect(failure(() => allocateIPv6('fd00:1::/64', new Set(), 'fd00:2::1', { field, network: 'v6' }))).toEqual({ code: 'InvalidArgument', field, message: 'nics[0].ipv6_address fd00:2::1 is outside network v6 (fd00:1::/64)' });
    expect(failure(() => allocateIPv6('fd00:1::/64', new Set(), 'fd00:1::', { field })).message).toContain('anycast');
    expect(failure(() => allocateIPv6('fd00:1::/64', new Set(), 'nope', { field })).code).toBe('InvalidArgument');
    expect(failure(() => allocateIPv6('fd00:1::/64', new Map([['fd00:1::10', 'vm9/0']]), 'fd00:1:0::10', { field })))
      .toEqual({ code: 'FailedPrecondition', field, message: 'nics[0].ipv6_address fd00:1::10 is already in use in network fd00:1::/64 by vm9/0' });
  });
});
