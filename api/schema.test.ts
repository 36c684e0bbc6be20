import { loadCrds, validateDocument } from './schema';
import { API_VERSION, KINDS, type Resource } from './types';
import { InvalidArgumentError } from './errors';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const vm = (spec: Record<string, unknown>, name = 'test-vm'): Resource =>
  ({ apiVersion: API_VERSION, kind: 'VirtualMachine', metadata: { name }, spec } as Resource);

function invalid(doc: Resource): InvalidArgumentError {
  try { validateDocument(doc); } catch (e) { if (e instanceof InvalidArgumentError) return e; throw e; }
  throw new Error('expected InvalidArgumentError');
}

describe('CRD schemas', () => {
  it('loads one structural CRD per kind with status subresource and printer columns', () => {
    const crds = loadCrds();
    for (const kind of KINDS) {
      const crd = crds.get(kind)!;
      expect(crd.raw.apiVersion).toBe('apiextensions.k8s.io/v1');
      const version = (crd.raw as any).spec.versions[0];
      expect(version.subresources).toEqual({ status: {} });
      expect(crd.printerColumns.length).toBeGreaterThan(0);
      expect((crd.schema as any).type).toBe('object');
      expect((crd.schema as any).properties.spec.type).toBe('object');
    }
  });

  it('accepts the seed CreateVirtualMachine args as a spec', () => {
    const doc = vm({
      request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 536870912, limit_memory_bytes: 536870912,
      block_storage_names: ['test-blockstorage'], nics: [{ network_name: 'test-network', ipv4_address: '192.168.0.1' }],
      uuid: '056d2ccd-0c4c-44dc-a2c8-39a9d394b51f', login_username: 'n0user', ssh_authorized_keys: ['ecdsa-sha2-nistp256 AAAA testkey'],
    });
    expect(() => validateDocument(doc)).not.toThrow();
    expect((doc.spec as any).run_state).toBe('RUNNING'); // schema default applied
  });

  it('names the bad field', () => {
    expect(invalid(vm({ limit_cpu_milli_core: 1500, limit_memory_bytes: 1 << 30 })).field).toBe('spec.limit_cpu_milli_core');
    expect(invalid(vm({ limit_cpu_milli_core: 1000, limit_memory_bytes: 1 << 30, bogus: 1 })).field).toBe('spec.bogus');
    expect(invalid(vm({ limit_memory_bytes: 1 << 30 })).field).toBe('spec.limit_cpu_milli_core');
    expect(invalid(vm({ limit_cpu_milli_core: 1000, limit_memory_bytes: 1 << 30, uuid: 'nope' })).field).toBe('spec.uuid');
    expect(invalid(vm({ limit_cpu_milli_core: 1000, limit_memory_bytes: 1 << 30 }, '../etc')).field).toBe('metadata.name');
    expect(invalid({ ...vm({}), kind: 'Pod' as any }).field).toBe('kind');
    expect(invalid({ ...vm({}), apiVersion: 'v1' as any }).field).toBe('apiVersion');
  });

  it('rejects documents of 1 MiB or more with a clear error', () => {
    const doc = vm({ limit_cpu_milli_core: 1000, limit_memory_bytes: 1 << 30 });
    doc.metadata.annotations = { big: 'x'.repeat(1024 * 1024) };
    expect(invalid(doc).message).toMatch(/limited to \d+ bytes/);
  });

  it('keeps api/generated/types.ts in step with crds/', () => {
    expect(() => execFileSync('node', [path.join(__dirname, '..', 'hack', 'gen-types.js'), '--check'], { stdio: 'pipe' })).not.toThrow();
  });
});
