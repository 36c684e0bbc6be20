import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeStoreConformance } from './conformance';
import { LmdbBackend } from './embedded';
import { openStore } from './index';
import { KvStore } from './kv';
import type { Network } from '../types';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-embedded-'));
}

let backend: LmdbBackend | undefined;
describeStoreConformance('embedded', async () => {
  const dir = tempDir();
  backend = new LmdbBackend(dir);
  const store = new KvStore('embedded', backend, '/n0stack');
  return { store, cleanup: async () => { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
}, { supportsCompaction: async () => async (revision) => backend!.compact(Number(revision)) });

describe('embedded store', () => {
  it('keeps only the newest revisions in its event log and says TooOld for older ones', async () => {
    const dir = tempDir();
    const kv = new LmdbBackend(dir, 5);
    try {
      let rev = 0;
      for (let i = 0; i < 8; i++) rev = (await kv.put(`/p/k${i}`, 'v', 0))!;
      expect(rev).toBe(8);
      const events: number[] = [];
      const controller = new AbortController();
      for await (const e of kv.watch('/p/', 3, controller.signal)) { events.push(e.revision); if (e.revision === 8) controller.abort(); }
      expect(events).toEqual([4, 5, 6, 7, 8]);
      await expect((async () => { for await (const _ of kv.watch('/p/', 2)) { /* nothing */ } })()).rejects.toMatchObject({ code: 'TooOld' });
    } finally {
      await kv.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps every acknowledged create after the writing process is killed with SIGKILL', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, [path.join(__dirname, 'testing', 'crash-writer.js'), dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the writer acknowledged too little within 20 s; stderr: ${err}`)), 20_000);
        child.stdout.on('data', (d) => {
          out += d;
          if (out.split('\n').length > 300) { clearTimeout(timer); resolve(); }
        });
        child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the writer exited early (${code}): ${err}`)); });
      });
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      // Only complete lines were acknowledged; a name cut off by the kill was not.
      const acknowledged = out.split('\n').slice(0, -1);
      expect(acknowledged.length).toBeGreaterThanOrEqual(300);

      const store = await openStore({ backend: 'embedded', dataDir: dir });
      try {
        const present = new Set((await store.list('Network')).items.map((i) => i.metadata.name));
        const missing = acknowledged.filter((name) => !present.has(name));
        expect(missing).toEqual([]);
        // The reopened store keeps working and continues the revision sequence.
        const after = await store.create<Network>({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: 'after-crash' }, spec: {} });
        expect(Number(after.metadata.resourceVersion)).toBeGreaterThan(acknowledged.length);
      } finally {
        await store.close();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});
