// NetworkAddress collector: an address whose holder VM no longer exists, or is a namesake with
// another uid, is deleted (level-triggered, like Kubernetes' garbage collector for ownerReferences).
// A VM's finalizer deletes its addresses; this catches what a controller killed between a create
// and the VM's status write left, and a VM removed without its finalizer. A seed reservation's
// addresses have no VM and stay until ReleaseNetworkInterface.
import { isN0Error } from '../api/errors';
import { logger } from '../api/log';
import type { NetworkAddress, VirtualMachine } from '../api/types';
import { ADDRESS_INDEXES, ADDRESSES_OF_VM } from './addresses';
import type { Cache, ReconcileContext, ReconcileResult, Reconciler } from './runtime/types';

export class NetworkAddressReconciler implements Reconciler<'NetworkAddress'> {
  readonly kind = 'NetworkAddress' as const;
  private readonly log = logger('address-collector');
  readonly indexes = ADDRESS_INDEXES;
  // A VM that goes (or is deleted and made again under its name) may leave addresses to collect.
  readonly watches = [{
    kind: 'VirtualMachine' as const,
    map: (obj: any, cache: Cache) => {
      const vm = obj as VirtualMachine;
      const cached = cache.get('VirtualMachine', vm.metadata.name);
      if (cached && cached.metadata.uid === vm.metadata.uid && !vm.metadata.deletionTimestamp) return [];
      return cache.byIndex('NetworkAddress', ADDRESSES_OF_VM, vm.metadata.name).map((a) => a.metadata.name);
    },
  }];

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const cached = ctx.cache.get('NetworkAddress', name);
    if (!cached?.spec.virtual_machine_name) return {};
    if (await this.holderLives(cached, ctx)) return {};
    // Confirmed on the stored address too, and deleted only at that resourceVersion: a holder that
    // took the name again since is not robbed.
    let addr: NetworkAddress;
    try { addr = await ctx.store.get('NetworkAddress', name); } catch (err) { if (isN0Error(err, 'NotFound')) return {}; throw err; }
    if (addr.metadata.resourceVersion !== cached.metadata.resourceVersion && await this.holderLives(addr, ctx)) return {};
    try {
      await ctx.store.delete('NetworkAddress', name, { resourceVersion: addr.metadata.resourceVersion });
      this.log.info(`collected address ${name}: its holder ${addr.spec.holder_key} (uid ${addr.spec.virtual_machine_uid}) is gone`);
    } catch (err) {
      if (!isN0Error(err, 'NotFound') && !isN0Error(err, 'Conflict')) throw err;
    }
    return {};
  }

  /** The holder VM exists with the recorded uid (the store is asked when the cache says no: a VM created a moment ago may not be cached). */
  private async holderLives(addr: NetworkAddress, ctx: ReconcileContext): Promise<boolean> {
    const vmName = addr.spec.virtual_machine_name!;
    const same = (vm: VirtualMachine | undefined) => !!vm && (vm.metadata.uid ?? '') === (addr.spec.virtual_machine_uid ?? '');
    if (same(ctx.cache.get('VirtualMachine', vmName))) return true;
    try { return same(await ctx.store.get('VirtualMachine', vmName)); } catch (err) { if (isN0Error(err, 'NotFound')) return false; throw err; }
  }
}
