// The controllers' placement view: what is placed comes from the cache's per-kind node index, and
// a commit waits until each informer has applied the revisions the node's counter names.
import { cacheView, PLACED_ON } from './usage';
import type { Cache, ReconcileContext } from './runtime/types';
import type { Kind } from '../api/types';

function context(revisions: Partial<Record<Kind, string>>, signal = new AbortController().signal): ReconcileContext {
  const cache: Cache = {
    get: () => undefined,
    list: () => [],
    byIndex: (kind, index, key) => (index === PLACED_ON && key === 'n1' ? [{ kind, metadata: { name: `${kind}-on-n1` } } as never] : []),
    revision: (kind) => revisions[kind],
  };
  return { store: {} as never, cache, signal, enqueue: () => undefined };
}

describe('cacheView', () => {
  it('reads what is placed on a node from the index of each kind', async () => {
    const placed = await cacheView(context({})).placedOn('n1');
    expect(placed.virtualMachines.map((o) => o.metadata.name)).toEqual(['VirtualMachine-on-n1']);
    expect(placed.blockStorages.map((o) => o.metadata.name)).toEqual(['BlockStorage-on-n1']);
    expect(placed.reservations.map((o) => o.metadata.name)).toEqual(['Reservation-on-n1']);
  });

  it('waits until every informer has applied the revision the counter names, comparing numbers', async () => {
    const revisions: Partial<Record<Kind, string>> = { VirtualMachine: '99', BlockStorage: '5' };
    const view = cacheView(context(revisions));
    let done = false;
    const waiting = view.caughtUp({ VirtualMachine: '100', BlockStorage: '5' }).then(() => { done = true; });
    await new Promise((r) => setTimeout(r, 30));
    expect(done).toBe(false); // '99' < '100' although it sorts after it as text
    revisions.VirtualMachine = '100';
    await waiting;
    expect(done).toBe(true);
  });

  it('gives up when the controller stops while it waits', async () => {
    const stop = new AbortController();
    const waiting = cacheView(context({}, stop.signal)).caughtUp({ Reservation: '7' });
    stop.abort();
    await expect(waiting).rejects.toThrow(/stopped while waiting for the cache/);
  });
});
