// The web UI's Network watch with the seed's view: reserved_network_interfaces is rendered from the
// NetworkAddress objects (api/addresses.ts), and an address lent or released changes that view
// although the Network document did not change, so it is sent as a MODIFIED of its Network.
import { renderNetwork } from '../addresses';
import type { Store, WatchEvent } from '../store/store';
import type { Network, NetworkAddress } from '../types';

/** Interleaves several event streams as their events come; ends when all have ended. */
async function* merge<T>(streams: AsyncIterable<T>[]): AsyncGenerator<T> {
  const its = streams.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map(its.map((it, i) => [i, it.next().then((r) => ({ i, r }))]));
  try {
    while (pending.size) {
      const { i, r } = await Promise.race(pending.values());
      if (r.done) { pending.delete(i); continue; }
      pending.set(i, its[i].next().then((next) => ({ i, r: next })));
      yield r.value;
    }
  } finally {
    await Promise.all(its.map((it) => it.return?.()));
  }
}

export function networkWatch(store: Pick<Store, 'list' | 'watch'>) {
  const networks = new Map<string, Network>();
  const lent = new Map<string, Map<string, NetworkAddress>>();
  let addressesVersion = '';
  const file = (type: string, a: NetworkAddress) => {
    let of = lent.get(a.spec.network_name);
    if (!of) lent.set(a.spec.network_name, of = new Map());
    if (type === 'DELETED') of.delete(a.metadata.name); else of.set(a.metadata.name, a);
  };
  return {
    async list(): Promise<{ items: Network[]; resourceVersion: string }> {
      const [nets, addresses] = await Promise.all([store.list('Network'), store.list('NetworkAddress')]);
      for (const n of nets.items) networks.set(n.metadata.name, n);
      for (const a of addresses.items) file('ADDED', a);
      addressesVersion = addresses.resourceVersion;
      return nets;
    },
    watch(resourceVersion: string, signal: AbortSignal): AsyncIterable<WatchEvent<Network>> {
      async function* nets(): AsyncGenerator<WatchEvent<Network> | undefined> {
        for await (const ev of store.watch('Network', { resourceVersion, signal })) {
          if (ev.type === 'DELETED') networks.delete(ev.object.metadata.name); else networks.set(ev.object.metadata.name, ev.object);
          yield ev;
        }
      }
      async function* addresses(): AsyncGenerator<WatchEvent<Network> | undefined> {
        for await (const ev of store.watch('NetworkAddress', { resourceVersion: addressesVersion, signal })) {
          file(ev.type, ev.object);
          const net = networks.get(ev.object.spec.network_name);
          yield net ? { ...ev, type: 'MODIFIED', object: net } as WatchEvent<Network> : undefined;
        }
      }
      return (async function* () {
        for await (const ev of merge([nets(), addresses()])) if (ev) yield ev;
      })();
    },
    /** A Network as the seed shows it, with what it lends now. */
    render: (net: Network): Network => renderNetwork(net, [...(lent.get(net.metadata.name)?.values() ?? [])]),
  };
}
