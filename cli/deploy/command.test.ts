import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deployCommand, recordName, sshTarget } from './command';

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

describe('the command\'s flags are checked before the file, the file before the facade', () => {
  let dir: string;
  let file: string;
  const asked: string[] = [];
  const out: string[] = [];
  const run = (...args: string[]) => deployCommand({
    getVm: async (name) => { asked.push(name); return {}; },
    parseDuration: (v) => { if (!/^\d+s$/.test(v)) throw new Error('not a duration'); return Number(v.slice(0, -1)) * 1000; },
    out: (l) => out.push(l), err: (l) => out.push(l), fail: (code) => new Error(`exit ${code}`),
  }).exitOverride().parseAsync(args, { from: 'user' });

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0deploy-cmd-'));
    file = path.join(dir, 'n0deploy');
    fs.writeFileSync(file, 'DEPLOY\nRUN true\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => { asked.length = 0; out.length = 0; });

  test('bad flags name themselves', async () => {
    await expect(run('-f', file, 'net', 'x')).rejects.toThrow('deploy works on virtual machines only');
    await expect(run('-f', file, '--wait', '5 minutes', 'vm', 'x')).rejects.toThrow('--wait "5 minutes": use a duration such as 30s or 5m');
    await expect(run('-f', file, '--port', '70000', 'vm', 'x')).rejects.toThrow('--port 70000: a TCP port (1-65535)');
    await expect(run('-f', file, '--name', '../x', 'vm', 'x')).rejects.toThrow('--name "../x"');
    expect(asked).toEqual([]);
  });

  test('a file with problems is refused before the VM is looked up; one without needs the VM\'s address', async () => {
    fs.writeFileSync(path.join(dir, 'bad'), 'DEPLOY\nCOPY /etc/passwd /x\n');
    await expect(run('-f', path.join(dir, 'bad'), 'vm', 'x')).rejects.toThrow('line 2: COPY source /etc/passwd is outside the file\'s folder');
    expect(asked).toEqual([]);
    await expect(run('-f', file, 'vm', 'x')).rejects.toThrow('virtualmachine/x has no NIC with an ipv4_address; give --host');
    expect(asked).toEqual(['x']);
  });
});
