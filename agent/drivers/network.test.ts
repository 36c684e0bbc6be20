import { InvalidArgumentError } from '../../api/errors';
import { bridgeName, vlanInterfaceName } from '../paths';
import {
  buildStates, diffPeers, isVlanUnsupported, IprouteNetworkDriver, parseCidr, parseFdbPeers, parseLinks,
  staleAddresses, validateNetnsName, validateSpec, vxlanMismatch,
} from './network';

// Trimmed from real `ip -json -details link show` output of iproute2 6.1 on this kernel.
const LINKS = JSON.stringify([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], mtu: 65536, link_type: 'loopback' },
  { ifindex: 2, link_index: 2, ifname: 'va', flags: ['BROADCAST', 'MULTICAST', 'UP'], mtu: 1500, link_netnsid: 0, linkinfo: { info_kind: 'veth' } },
  { ifindex: 3, ifname: 'n0bra1b2c3d4', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mtu: 1450, ifalias: 'net-one',
    linkinfo: { info_kind: 'bridge', info_data: { forward_delay: 1500, stp_state: 0 } } },
  { ifindex: 4, ifname: 'n0vxa1b2c3d4', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mtu: 1450, master: 'n0bra1b2c3d4',
    linkinfo: { info_kind: 'vxlan', info_data: { id: 100, local: '10.250.0.1', link: 'va', port: 4789, learning: false, ttl: 0 },
      info_slave_kind: 'bridge', info_slave_data: { state: 'forwarding' } } },
  { ifindex: 5, ifname: 'n0tp123456789', flags: ['BROADCAST', 'MULTICAST', 'UP'], mtu: 1500, master: 'n0bra1b2c3d4',
    linkinfo: { info_kind: 'tun', info_data: { type: 'tap', pi: false, vnet_hdr: true, persist: true }, info_slave_kind: 'bridge' } },
  { ifindex: 6, ifname: 'n0br00000000', flags: ['BROADCAST', 'MULTICAST'], mtu: 1500,
    linkinfo: { info_kind: 'bridge', info_data: {} } },
  { ifindex: 7, ifname: 'eth0.7', flags: ['BROADCAST', 'MULTICAST', 'UP'], mtu: 1500, link: 'eth0', master: 'n0br00000000',
    linkinfo: { info_kind: 'vlan', info_data: { protocol: '802.1Q', id: 7 } } },
  { ifindex: 8, ifname: 'docker0', flags: ['BROADCAST'], mtu: 1500, linkinfo: { info_kind: 'bridge', info_data: {} } },
]);

const FDB = JSON.stringify([
  { mac: '33:33:00:00:00:01', ifname: 'n0bra1b2c3d4', flags: ['self'], state: 'permanent' },
  { mac: '66:36:df:5f:3b:e4', ifname: 'n0vxa1b2c3d4', flags: [], master: 'n0bra1b2c3d4', state: 'permanent' },
  { mac: '00:00:00:00:00:00', ifname: 'n0vxa1b2c3d4', dst: '10.250.0.3', flags: ['self'], state: 'permanent' },
  { mac: '00:00:00:00:00:00', ifname: 'n0vxa1b2c3d4', dst: '10.250.0.2', flags: ['self'], state: 'permanent' },
  { mac: '00:00:00:00:00:00', ifname: 'n0vxa1b2c3d4', dst: '10.250.0.2', flags: ['self'], state: 'permanent' },
]);

describe('parseLinks', () => {
  const links = parseLinks(LINKS);
  it('reads kind, master, up, alias and the vxlan attributes', () => {
    expect(links.find((l) => l.name === 'n0vxa1b2c3d4')).toEqual({
      name: 'n0vxa1b2c3d4', kind: 'vxlan', master: 'n0bra1b2c3d4', up: true, mtu: 1450,
      vxlan: { id: 100, local: '10.250.0.1', port: 4789, device: 'va', learning: false },
    });
    expect(links.find((l) => l.name === 'n0bra1b2c3d4')).toMatchObject({ kind: 'bridge', up: true, alias: 'net-one' });
    expect(links.find((l) => l.name === 'n0br00000000')?.up).toBe(false);
  });
  it('reads taps and vlans', () => {
    expect(links.find((l) => l.name === 'n0tp123456789')).toMatchObject({ kind: 'tun', tunType: 'tap' });
    expect(links.find((l) => l.name === 'eth0.7')).toMatchObject({ kind: 'vlan', vlan: { id: 7 }, link: 'eth0' });
  });
  it('treats empty output as no links and rejects garbage', () => {
    expect(parseLinks('')).toEqual([]);
    expect(parseLinks('[]\n')).toEqual([]);
    expect(() => parseLinks('Device "x" does not exist.')).toThrow(/cannot parse ip link JSON/);
    expect(() => parseLinks('{}')).toThrow(/not an array/);
  });
});

describe('parseFdbPeers', () => {
  it('keeps only all-zero entries with a destination, deduplicated and sorted per device', () => {
    const peers = parseFdbPeers(FDB);
    expect([...peers.keys()]).toEqual(['n0vxa1b2c3d4']);
    expect(peers.get('n0vxa1b2c3d4')).toEqual(['10.250.0.2', '10.250.0.3']);
  });
});

describe('diffPeers', () => {
  it('adds the missing and removes the stale', () => {
    expect(diffPeers(['10.0.0.1', '10.0.0.2'], ['10.0.0.2', '10.0.0.3'])).toEqual({ add: ['10.0.0.3'], remove: ['10.0.0.1'] });
  });
  it('is empty when the FDB already matches', () => {
    expect(diffPeers(['10.0.0.1'], ['10.0.0.1'])).toEqual({ add: [], remove: [] });
    expect(diffPeers([], [])).toEqual({ add: [], remove: [] });
  });
  it('removes everything for an empty peer list', () => {
    expect(diffPeers(['10.0.0.1', '10.0.0.2'], [])).toEqual({ add: [], remove: ['10.0.0.1', '10.0.0.2'] });
  });
});

describe('buildStates', () => {
  it('reports every n0 bridge with its segment, peers and taps, and ignores foreign bridges', () => {
    const states = buildStates(parseLinks(LINKS), parseFdbPeers(FDB));
    expect(states).toEqual([
      { name: 'n0br00000000', bridgeName: 'n0br00000000', present: true, segmentId: 7, peers: [], taps: [], mtu: 1500 },
      // A VXLAN network's bridge takes its overlay port's MTU: what its guests must use.
      { name: 'net-one', bridgeName: 'n0bra1b2c3d4', present: true, segmentId: 100, peers: ['10.250.0.2', '10.250.0.3'], taps: ['n0tp123456789'], mtu: 1450 },
    ]);
  });
});

describe('validateSpec', () => {
  const base = { name: 'net-one', bridgeName: bridgeName('net-one'), segmentId: 100, peers: ['10.250.0.2'] };
  it('normalises peers: deduplicated, sorted, without our own underlay address', () => {
    const spec = validateSpec({ ...base, peers: ['10.250.0.9', '10.250.0.1', '10.250.0.2', '10.250.0.9'] }, '10.250.0.1');
    expect(spec.peers).toEqual(['10.250.0.2', '10.250.0.9']);
  });
  it('rejects bad fields with the field named', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ segmentId: 0 }, 'segment_id'],
      [{ segmentId: 0x1000000 }, 'segment_id'],
      [{ segmentId: 1.5 }, 'segment_id'],
      [{ peers: ['10.0.0.1; rm -rf /'] }, 'peers[0]'],
      [{ bridgeName: 'eth0' }, 'bridge_name'],
      [{ bridgeName: 'n0br-way-too-long-name' }, 'bridge_name'],
      [{ bridgeName: 'n0br/../x' }, 'bridge_name'],
      [{ gatewayCidr: '192.168.1.1' }, 'gateway_cidr'],
      [{ gatewayCidr: '192.168.1.1/33' }, 'gateway_cidr'],
      [{ name: 'Bad Name' }, 'network_name'],
      [{ uplink: 'eth0' }, 'vlan_id'],
      [{ vlanId: 5 }, 'uplink'],
      [{ uplink: 'eth0 x', vlanId: 5 }, 'uplink'],
      [{ uplink: 'eth0', vlanId: 4095 }, 'vlan_id'],
    ];
    for (const [patch, field] of cases) {
      let caught: unknown;
      try { validateSpec({ ...base, ...patch } as never); } catch (err) { caught = err; }
      expect(caught).toBeInstanceOf(InvalidArgumentError);
      expect((caught as InvalidArgumentError).field).toBe(field);
    }
  });
  it('accepts a VLAN network and names its sub-interface through paths.ts', () => {
    const spec = validateSpec({ ...base, uplink: 'eth0', vlanId: 7, gatewayCidr: '192.168.7.1/24' });
    expect(spec.vlan).toEqual({ uplink: 'eth0', vlanId: 7, device: vlanInterfaceName('eth0', 7) });
    expect(spec.gateway).toEqual({ address: '192.168.7.1', prefixLength: 24, family: 4 });
  });
});

describe('parseCidr', () => {
  it('parses IPv4 and IPv6', () => {
    expect(parseCidr('10.1.2.3/8', 'f')).toEqual({ address: '10.1.2.3', prefixLength: 8, family: 4 });
    expect(parseCidr('FD00::1/64', 'f')).toEqual({ address: 'fd00::1', prefixLength: 64, family: 6 });
  });
});

describe('addresses', () => {
  // `ip -json -details addr show` is link show plus addr_info.
  const json = JSON.stringify([{ ifname: 'n0br1', linkinfo: { info_kind: 'bridge' }, addr_info: [
    { family: 'inet', local: '192.168.77.1', prefixlen: 24, scope: 'global' },
    { family: 'inet', local: '192.168.5.1', prefixlen: 24, scope: 'global' },
    { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
  ] }]);
  it('keeps the gateway and link-local, removes other global addresses', () => {
    const current = parseLinks(json)[0].addresses!;
    expect(current).toHaveLength(3);
    expect(parseLinks(LINKS)[0].addresses).toBeUndefined();
    expect(staleAddresses(current, parseCidr('192.168.77.1/24', 'g'))).toEqual([{ address: '192.168.5.1', prefixLength: 24, scope: 'global' }]);
    expect(staleAddresses(current, parseCidr('192.168.77.1/16', 'g')).map((a) => a.address)).toEqual(['192.168.77.1', '192.168.5.1']);
    expect(staleAddresses(current).map((a) => a.address)).toEqual(['192.168.77.1', '192.168.5.1']);
  });
});

describe('vxlanMismatch', () => {
  const vx = parseLinks(LINKS).find((l) => l.name === 'n0vxa1b2c3d4')!;
  it('accepts a matching device', () => {
    expect(vxlanMismatch(vx, { id: 100, local: '10.250.0.1', device: 'va' })).toBeUndefined();
    expect(vxlanMismatch(vx, { id: 100 })).toBeUndefined();
  });
  it('explains a mismatch', () => {
    expect(vxlanMismatch(vx, { id: 200 })).toBe('has id 100, want 200');
    expect(vxlanMismatch(vx, { id: 100, local: '10.250.0.9' })).toMatch(/local/);
    expect(vxlanMismatch(vx, { id: 100, device: 'eth1' })).toMatch(/device/);
    expect(vxlanMismatch({ ...vx, vxlan: { ...vx.vxlan!, learning: true } }, { id: 100 })).toMatch(/learning/);
    expect(vxlanMismatch({ name: 'x', kind: 'bridge', up: true }, { id: 100 })).toMatch(/not vxlan/);
  });
});

describe('isVlanUnsupported', () => {
  it('recognises the kernel without 802.1q', () => {
    expect(isVlanUnsupported('Error: Unknown device type.\n')).toBe(true);
    expect(isVlanUnsupported('RTNETLINK answers: Operation not supported\n')).toBe(true);
    expect(isVlanUnsupported('Cannot find device "eth9"\n')).toBe(false);
  });
});

describe('IprouteNetworkDriver arguments', () => {
  it('validates its options before running anything', () => {
    expect(() => new IprouteNetworkDriver({ netns: '../etc' })).toThrow(/netns/);
    expect(() => new IprouteNetworkDriver({ netns: '-n' })).toThrow(/netns/);
    expect(() => new IprouteNetworkDriver({ underlayAddress: 'host.example' })).toThrow(/underlayAddress/);
    expect(() => new IprouteNetworkDriver({ underlayDevice: 'eth0;reboot' })).toThrow(/underlayDevice/);
    expect(validateNetnsName('n0t-1a2b3c4d')).toBe('n0t-1a2b3c4d');
  });
  it('rejects hostile device names as a rejected promise', async () => {
    const driver = new IprouteNetworkDriver({ netns: 'n0t-never-created' });
    await expect(driver.deleteTap('eth0')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(driver.deleteNetwork('n0br;x')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(driver.ensureTap({ tapName: 'n0tp1', bridgeName: 'lo', hardwareAddress: '52:54:00:00:00:01' })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
