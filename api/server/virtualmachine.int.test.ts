// A VM's login password through the facade's two doors (the seed's CreateVirtualMachine and
// ResourceService.Apply) on a real embedded store: only a SHA-512 crypt hash is written, and no
// answer, read or watch event (nor the database file) holds the password in clear.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { verifyPassword } from '../logic/password';
import { openStore } from '../store';
import type { Store } from '../store/store';
import type { VirtualMachine } from '../types';
import { resourceService } from './resource';
import { virtualMachineService } from './virtualmachine';

const PASSWORD = 'clear-text-Passw0rd-that-must-not-be-stored';
const spec = { limit_cpu_milli_core: 1000, limit_memory_bytes: 268435456 };
// No controllers run here: a create's wait for RUNNING ends at this short deadline, after the write.
const call = () => ({ deadline: Date.now() + 300, signal: new AbortController().signal });

describe('login_password is stored only as a hash', () => {
  let dir: string;
  let store: Store;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-password-'));
    store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const databaseHolds = (text: string): boolean => {
    const files = fs.readdirSync(path.join(dir, 'store')).map((f) => path.join(dir, 'store', f));
    return files.some((f) => fs.statSync(f).isFile() && fs.readFileSync(f).includes(Buffer.from(text)));
  };

  it('CreateVirtualMachine (the seed\'s request, password in clear) writes login_password_hash and nothing in clear', async () => {
    const vms = virtualMachineService({ store, defaultWaitMs: 300 });
    await expect(vms.CreateVirtualMachine({ name: 'seed-vm', ...spec, login_username: 'n0user', login_password: PASSWORD }, call()))
      .rejects.toMatchObject({ code: 'DeadlineExceeded' });
    const stored = await store.get('VirtualMachine', 'seed-vm');
    expect(JSON.stringify(stored)).not.toContain(PASSWORD);
    expect(stored.spec).not.toHaveProperty('login_password');
    expect(stored.spec.login_password_hash).toMatch(/^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
    expect(verifyPassword(PASSWORD, stored.spec.login_password_hash!)).toBe(true);
    expect(JSON.stringify(await vms.GetVirtualMachine({ name: 'seed-vm' }, call()))).not.toContain(PASSWORD);
    expect(databaseHolds(stored.spec.login_password_hash!)).toBe(true); // the check below can see documents
    expect(databaseHolds(PASSWORD)).toBe(false);
  });

  it('CreateVirtualMachine refuses an over-long password, naming the field, and writes nothing', async () => {
    const vms = virtualMachineService({ store, defaultWaitMs: 300 });
    await expect(vms.CreateVirtualMachine({ name: 'long', ...spec, login_password: 'x'.repeat(257) }, call()))
      .rejects.toMatchObject({ code: 'InvalidArgument', field: 'login_password' });
    await expect(store.get('VirtualMachine', 'long')).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('Apply hashes spec.login_password, re-applying the same manifest is unchanged, and Get/List/Watch never show it', async () => {
    const resources = resourceService({ store, defaultWaitMs: 300 });
    const manifest = (password: string) => JSON.stringify({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'applied' }, spec: { ...spec, login_password: password } });
    const first = await resources.Apply({ document_json: manifest(PASSWORD), wait: false }, call()) as { result: string; document_json: string };
    expect(first.result).toBe('created');
    expect(first.document_json).not.toContain(PASSWORD);
    const hash = (await store.get('VirtualMachine', 'applied')).spec.login_password_hash!;
    expect(verifyPassword(PASSWORD, hash)).toBe(true);

    const again = await resources.Apply({ document_json: manifest(PASSWORD), wait: false }, call()) as { result: string; document_json: string };
    expect(again.result).toBe('unchanged');
    const beforeChange = (JSON.parse(again.document_json) as VirtualMachine).metadata.resourceVersion!;
    const changed = await resources.Apply({ document_json: manifest('another-password'), wait: false }, call()) as { result: string };
    expect(changed.result).toBe('configured');
    const newHash = (await store.get('VirtualMachine', 'applied')).spec.login_password_hash!;
    expect(newHash).not.toBe(hash);
    expect(verifyPassword('another-password', newHash)).toBe(true);

    const got = await resources.Get({ kind: 'VirtualMachine', name: 'applied' }, call());
    const listed = await resources.List({ kind: 'VirtualMachine' }, call());
    const watched = await watchOnce(resources, 'VirtualMachine', beforeChange);
    for (const answer of [got, listed, watched]) {
      expect(JSON.stringify(answer)).toContain('login_password_hash');
      expect(JSON.stringify(answer)).not.toMatch(/"login_password"|clear-text-Passw0rd|another-password/);
    }
    expect(databaseHolds(PASSWORD) || databaseHolds('another-password')).toBe(false);
  });

  it('Apply refuses a clear password beside a hash, and a hash that is not SHA-512 crypt, naming the field', async () => {
    const resources = resourceService({ store, defaultWaitMs: 300 });
    const apply = (extra: object) => resources.Apply({ document_json: JSON.stringify({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'bad' }, spec: { ...spec, ...extra } }), wait: false }, call());
    await expect(apply({ login_password: 'a', login_password_hash: '$6$abc$' + 'x'.repeat(86) })).rejects.toMatchObject({ code: 'InvalidArgument', field: 'spec.login_password' });
    await expect(apply({ login_password: '' })).rejects.toMatchObject({ code: 'InvalidArgument', field: 'spec.login_password' });
    await expect(apply({ login_password_hash: 'plain-text' })).rejects.toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('login_password_hash') });
    await expect(store.get('VirtualMachine', 'bad')).rejects.toMatchObject({ code: 'NotFound' });
  });
});

/** The first event ResourceService.Watch sends for a kind after `resourceVersion`. */
function watchOnce(resources: ReturnType<typeof resourceService>, kind: string, resourceVersion: string): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const written: unknown[] = [];
    const fakeCall = Object.assign(new EventEmitter(), {
      request: { kind, resource_version: resourceVersion },
      write: (msg: unknown) => { written.push(msg); fakeCall.emit('cancelled'); resolve(written); return true; },
      end: () => resolve(written),
      destroy: (err: Error) => reject(err),
    });
    resources.Watch(fakeCall as never);
  });
}
