// HostAgent start-up hygiene: what a crash left in the disks dir goes, finished disks stay.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostAgent, type AgentDrivers } from './service';

describe('HostAgent.sweepLeftovers', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-sweep-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('removes temp files of interrupted fetches, conversions and copies, and nothing else', async () => {
    // Sweeping touches no driver: a crash must be cleaned up before anything runs.
    const agent = new HostAgent({ nodeName: 'node1', dataDir: dir, drivers: {} as AgentDrivers });
    const disks = agent.paths.disksDir;
    const leftovers = ['a.qcow2.download-0123456789ab', 'b.qcow2.tmp-abcdef012345', 'c.qcow2.tmp'];
    const kept = ['a.qcow2', 'keep.qcow2', 'notes.txt', '..qcow2.tmp', 'x.qcow2.tmp-xyz'];
    for (const f of [...leftovers, ...kept]) fs.writeFileSync(path.join(disks, f), 'x');
    expect(await agent.sweepLeftovers()).toEqual([...leftovers].sort());
    expect(fs.readdirSync(disks).sort()).toEqual([...kept].sort());
    expect(await agent.sweepLeftovers()).toEqual([]);
  });
});
