// NetworkService: virtual L2 networks and the interfaces (MAC + IP) they lend. Each address lent
// is a NetworkAddress named by its value (api/addresses.ts), created if absent, so two concurrent
// reservations can never get the same address; the seed's reserved_network_interfaces is
// rendered from them on read.
import { API_VERSION, type Network, type NetworkSpec } from '../types';
import { FailedPreconditionError, isN0Error, NotFoundError } from '../errors';
import { validateName } from '../names';
import { deleteChecked, mutate } from '../store/mutate';
import { byNetwork, listAddresses, renderNetwork, reserveAddresses, seedHolder, storeAddressView } from '../addresses';
import { admitDelete } from '../admission';
import { getCondition } from '../conditions';
import { waitFor } from './wait';
import { given, mapOrUndefined, networkMessage, seedAnnotations } from './convert';
import { admitted, compact, type FacadeContext, type ServiceHandlers } from './context';

export function networkService(context: FacadeContext): ServiceHandlers {
  // The kind's rules (spec, cidr immutable under reservations, delete precondition) are its
  // admission's (api/admission/network.ts), the same for ResourceService.
  const { store } = admitted(context);
  const rendered = async (net: Network) => networkMessage(renderNetwork(net, await listAddresses(store, net.metadata.name)));
  return {
    async ListNetworks(req) {
      const [{ items }, addresses] = await Promise.all([store.list('Network', { labelSelector: given(req.label_selector) }), store.list('NetworkAddress')]);
      const of = byNetwork(addresses.items);
      return { networks: items.map((net) => networkMessage(renderNetwork(net, of(net.metadata.name)))) };
    },
    async GetNetwork(req) {
      return rendered(await store.get('Network', validateName(req.name, 'name')));
    },
    async ApplyNetwork(req, call) {
      const name = validateName(req.name, 'name');
      const annotations = seedAnnotations(req.annotations);
      const labels = mapOrUndefined(req.labels);
      const spec = compact({ ipv4_cidr: given(req.ipv4_cidr), ipv6_cidr: given(req.ipv6_cidr), domain: given(req.domain), gateway_ipv4: given(req.gateway_ipv4) }) as NetworkSpec;
      let written: Network;
      try {
        written = await store.create({ apiVersion: API_VERSION, kind: 'Network', metadata: compact({ name, annotations, labels }), spec } as Network);
      } catch (err) {
        if (!isN0Error(err, 'AlreadyExists')) throw err;
        written = await mutate(store, 'Network', name, (net) => {
          net.spec = spec;
          net.metadata.annotations = annotations;
          net.metadata.labels = labels;
        }) as Network;
      }
      const generation = written.metadata.generation ?? 1;
      return rendered(await waitFor<'Network', Network>(store, 'Network', name, (net) => {
        if (!net?.status || (net.status.observedGeneration ?? 0) < generation) return undefined;
        if (net.status.state === 'FAILED') {
          const ready = getCondition(net.status.conditions, 'Ready');
          return { fail: new FailedPreconditionError(`Network "${name}": ${ready?.reason}: ${ready?.message}`) };
        }
        return net.status.state === 'AVAILABLE' ? { done: net } : undefined;
      }, { deadline: call.deadline, signal: call.signal, what: 'become AVAILABLE' }));
    },
    async DeleteNetwork(req, call) {
      const name = validateName(req.name, 'name');
      // The controller may still be writing status (just after the last VM released its interface).
      await deleteChecked(store, 'Network', name, (net) => admitDelete(store, net));
      await waitFor(store, 'Network', name, (obj) => (obj ? undefined : { done: true }), { deadline: call.deadline, signal: call.signal, what: 'be deleted', untilDeleted: true });
      return {};
    },
    async ReserveNetworkInterface(req) {
      const name = validateName(req.network_name, 'network_name');
      const key = validateName(req.network_interface_name, 'network_interface_name');
      const net = await store.get('Network', name);
      // Through the admitting store: a Network being deleted lends nothing new (networkaddress.network).
      // A key the Network still lists (not migrated yet) gets its listed addresses as objects.
      await reserveAddresses(store, storeAddressView(store), net, seedHolder(key), {
        hardware_address: given(req.hardware_address), ipv4_address: given(req.ipv4_address), ipv6_address: given(req.ipv6_address),
      }, 'ReserveNetworkInterfaceRequest', { annotations: mapOrUndefined(req.annotations) });
      return rendered(net);
    },
    async ReleaseNetworkInterface(req) {
      const name = validateName(req.network_name, 'network_name');
      const key = validateName(req.network_interface_name, 'network_interface_name');
      const net = await store.get('Network', name);
      const held = (await listAddresses(store, name)).filter((a) => a.spec.holder_key === key);
      const legacy = !!net.status?.reserved_network_interfaces?.[key];
      if (!held.length && !legacy) throw new NotFoundError('network interface', `${key}" in Network "${name}`);
      for (const a of held) {
        await store.delete('NetworkAddress', a.metadata.name, { resourceVersion: a.metadata.resourceVersion }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
      }
      if (legacy) {
        await mutate(store, 'Network', name, (n) => {
          if (!n.status?.reserved_network_interfaces?.[key]) return false;
          delete n.status.reserved_network_interfaces[key];
        }, { subresource: 'status' });
      }
      return {};
    },
  };
}
