import { recordName, sshTarget } from './command';

test('the record name is the file\'s base name, made safe for a path on the VM', () => {
  expect(recordName('deploy/n0deploy')).toBe('n0deploy');
  expect(recordName('/x/my app.n0deploy')).toBe('my-app.n0deploy');
  expect(recordName('.hidden')).toBe('hidden');
  expect(recordName('../$(id)')).toBe('id-');
  expect(recordName('...')).toBe('n0deploy');
});

test('the address and user come from the flags, else from the VM', () => {
  const vm = { login_username: 'n0user', nics: [{ network_name: 'a' }, { network_name: 'b', ipv4_address: '192.168.0.5' }] };
  expect(sshTarget('vm1', vm, {})).toEqual({ host: '192.168.0.5', user: 'n0user' });
  expect(sshTarget('vm1', vm, { host: '10.0.0.9', user: 'root' })).toEqual({ host: '10.0.0.9', user: 'root' });
  expect(() => sshTarget('vm1', { login_username: 'n0user', nics: [{ network_name: 'a' }] }, {})).toThrow('virtualmachine/vm1 has no NIC with an ipv4_address; give --host');
  expect(() => sshTarget('vm1', { login_username: '', nics: vm.nics }, {})).toThrow('virtualmachine/vm1 has no login_username; give --user');
});
