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

describe('HostAgent.vmAction with an action id', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-actions-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A VM driver that counts what it is told to do; enough of one for vmAction. */
  function countingDriver(options: { failReboot?: boolean } = {}) {
    const executions: string[] = [];
    const state = { name: 'vm1', pid: 4242, runState: 'running' as const, startedAt: '2026-12-01T22:00:00.000Z', serialSocket: 's', vncSocket: 'v', qmpSocket: 'q' };
    const vm = {
      state: async () => state,
      reboot: async (_: string, o: { hard: boolean }) => {
        executions.push(o.hard ? 'HARD_REBOOT' : 'REBOOT');
        // The agent dies mid-action: the guest may or may not have been reset.
        if (options.failReboot) throw new Error('agent killed mid-reboot');
      },
    };
    return { executions, drivers: { vm } as unknown as AgentDrivers };
  }
  const agentOn = (drivers: AgentDrivers) => {
    const agent = new HostAgent({ nodeName: 'node1', dataDir: dir, drivers });
    // The VM's run dir exists once it has been ensured; the journal lives in it.
    fs.mkdirSync(agent.paths.vmDir('vm1'), { recursive: true });
    return agent;
  };

  it('reboots once per id, across agent restarts, and answers a replay with the recorded outcome', async () => {
    const first = countingDriver();
    const agent = agentOn(first.drivers);
    const outcome = await agent.vmAction('vm1', 'REBOOT', { id: 'a-1' });
    expect(outcome).toMatchObject({ name: 'vm1', present: true, runState: 'running', pid: 4242 });
    expect(await agent.vmAction('vm1', 'REBOOT', { id: 'a-1' })).toEqual(outcome);
    expect(first.executions).toEqual(['REBOOT']);

    // A new agent process (same data dir) still knows the id.
    const second = countingDriver();
    expect(await agentOn(second.drivers).vmAction('vm1', 'REBOOT', { id: 'a-1' })).toEqual(outcome);
    expect(second.executions).toEqual([]);

    // Another id is another action; no id keeps the old, unguarded behaviour.
    await agentOn(second.drivers).vmAction('vm1', 'HARD_REBOOT', { id: 'a-2' });
    await agentOn(second.drivers).vmAction('vm1', 'REBOOT');
    await agentOn(second.drivers).vmAction('vm1', 'REBOOT');
    expect(second.executions).toEqual(['HARD_REBOOT', 'REBOOT', 'REBOOT']);
  });

  it('does not run an id again whose execution began before the agent died', async () => {
    const dying = countingDriver({ failReboot: true });
    await expect(agentOn(dying.drivers).vmAction('vm1', 'HARD_REBOOT', { id: 'b-1' })).rejects.toThrow('agent killed mid-reboot');
    const restarted = countingDriver();
    expect(await agentOn(restarted.drivers).vmAction('vm1', 'HARD_REBOOT', { id: 'b-1' })).toMatchObject({ present: true, runState: 'running' });
    expect(dying.executions).toEqual(['HARD_REBOOT']);
    expect(restarted.executions).toEqual([]);
  });

  it('refuses an id reused for another action, naming the id', async () => {
    const d = countingDriver();
    await agentOn(d.drivers).vmAction('vm1', 'REBOOT', { id: 'c-1' });
    await expect(agentOn(d.drivers).vmAction('vm1', 'HARD_REBOOT', { id: 'c-1' })).rejects.toThrow(/action id "c-1" .* was REBOOT, not HARD_REBOOT/);
    expect(d.executions).toEqual(['REBOOT']);
  });
});
