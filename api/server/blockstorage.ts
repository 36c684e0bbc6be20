// BlockStorageService: each mutating RPC writes the desired document and waits for the
// BlockStorage controller to report the outcome in status.
import { API_VERSION, ANNOTATIONS, type BlockStorage, type BlockStorageSpec } from '../types';
import { FailedPreconditionError, InvalidArgumentError } from '../errors';
import { validateName } from '../names';
import { admitDelete } from '../admission';
import { getCondition } from '../conditions';
import { deleteChecked, mutate } from '../store/mutate';
import { waitFor, type WaitVerdict } from './wait';
import { blockStorageMessage, given, mapOrUndefined, num, seedAnnotations } from './convert';
import { admitted, compact, DOWNLOAD_PATH, type CallInfo, type FacadeContext, type ServiceHandlers } from './context';

const READY_STATES = new Set(['AVAILABLE', 'IN_USE', 'PROTECTED']);

/** Done when the controller observed this generation and the disk exists; failed on FAILED. */
export function blockStorageSettled(generation: number) {
  return (bs: BlockStorage | undefined): WaitVerdict<BlockStorage> => {
    if (!bs) return { fail: new FailedPreconditionError('the block storage was deleted while waiting') };
    const st = bs.status;
    if (!st || (st.observedGeneration ?? 0) < generation) return undefined;
    if (st.state === 'FAILED') {
      const ready = getCondition(st.conditions, 'Ready');
      return { fail: new FailedPreconditionError(`BlockStorage "${bs.metadata.name}" failed: ${ready?.reason ?? 'Failed'}: ${ready?.message ?? ''}`) };
    }
    return st.state && READY_STATES.has(st.state) ? { done: bs } : undefined;
  };
}

/** Creates through the kind's admission (sizes, sources that exist and stay, the finalizer). */
/**
 * The node a disk can be read from whole, or FAILED_PRECONDITION: a disk a VM uses changes while
 * it is read (a torn image), and one not yet made has nothing to read.
 */
export function downloadableOn(bs: BlockStorage): string {
  const name = bs.metadata.name;
  if (bs.status?.state === 'IN_USE' || bs.status?.in_use_by) {
    throw new FailedPreconditionError(`BlockStorage "${name}" is IN_USE by ${bs.status?.in_use_by ?? 'a virtual machine'}: its bytes change while it runs; shut the VM down and SetAvailableBlockStorage, or CopyBlockStorage it and download the copy`);
  }
  const node = bs.status?.node_name;
  if (!node || (bs.status?.state !== 'AVAILABLE' && bs.status?.state !== 'PROTECTED')) {
    throw new FailedPreconditionError(`BlockStorage "${name}" is ${bs.status?.state ?? 'PENDING'}; it can be downloaded once AVAILABLE`);
  }
  return node;
}

export async function createBlockStorage(context: FacadeContext, call: CallInfo, doc: BlockStorage): Promise<BlockStorage> {
  const ctx = admitted(context);
  const created = await ctx.store.create(doc);
  return waitFor(ctx.store, 'BlockStorage', doc.metadata.name, blockStorageSettled(created.metadata.generation ?? 1), {
    deadline: call.deadline, signal: call.signal, what: 'become AVAILABLE', from: created,
  });
}

export function blockStorageDocument(req: any, extra: Partial<BlockStorageSpec> = {}): BlockStorage {
  const name = validateName(req.name, 'name');
  const annotations = seedAnnotations(req.annotations);
  return {
    apiVersion: API_VERSION,
    kind: 'BlockStorage',
    metadata: compact({ name, annotations, labels: mapOrUndefined(req.labels) }),
    spec: compact({
      request_bytes: num(req.request_bytes),
      limit_bytes: num(req.limit_bytes),
      node_name: annotations?.[ANNOTATIONS.blockStorageRequestNodeName],
      ...extra,
    }) as BlockStorageSpec,
  };
}

export function blockStorageService(context: FacadeContext): ServiceHandlers {
  // The kind's rules (sizes only grow, sources fixed, delete precondition) are its admission's
  // (api/admission/blockstorage.ts), the same for ResourceService.
  const ctx = admitted(context);
  const { store } = ctx;
  const get = async (name: unknown) => store.get('BlockStorage', validateName(name, 'name'));

  async function setSpec(req: any, call: CallInfo, change: (bs: BlockStorage) => void) {
    const updated = await mutate(store, 'BlockStorage', validateName(req.name, 'name'), (bs) => { change(bs); });
    return blockStorageMessage(await waitFor(store, 'BlockStorage', updated.metadata.name, blockStorageSettled(updated.metadata.generation ?? 1), {
      deadline: call.deadline, signal: call.signal, what: 'apply the change',
    }));
  }

  return {
    async CreateBlockStorage(req, call) {
      return blockStorageMessage(await createBlockStorage(ctx, call, blockStorageDocument(req)));
    },
    async FetchBlockStorage(req, call) {
      if (!given(req.source_url)) throw new InvalidArgumentError('source_url is required', 'source_url');
      return blockStorageMessage(await createBlockStorage(ctx, call, blockStorageDocument(req, compact({ source_url: req.source_url, source_sha256: given(req.source_sha256) }))));
    },
    async CopyBlockStorage(req, call) {
      const source = validateName(req.source_block_storage, 'source_block_storage');
      const src = await store.get('BlockStorage', source);
      const doc = blockStorageDocument(req, { source_block_storage: source });
      // A copy is made by the agent that holds the source, so it lives on the same node.
      doc.spec.node_name = src.status?.node_name ?? src.spec.node_name;
      return blockStorageMessage(await createBlockStorage(ctx, call, doc));
    },
    async ListBlockStorages(req) {
      const { items } = await store.list('BlockStorage', { labelSelector: given(req.label_selector) });
      return { block_storages: items.map(blockStorageMessage) };
    },
    async GetBlockStorage(req) {
      return blockStorageMessage(await get(req.name));
    },
    async UpdateBlockStorage(req, call) {
      return setSpec(req, call, (bs) => {
        const limit = given(num(req.limit_bytes));
        if (limit !== undefined) bs.spec.limit_bytes = limit;
        const request = given(num(req.request_bytes));
        if (request !== undefined) bs.spec.request_bytes = request;
        const annotations = seedAnnotations(req.annotations);
        if (annotations) bs.metadata.annotations = { ...bs.metadata.annotations, ...annotations };
        const labels = mapOrUndefined(req.labels);
        if (labels) bs.metadata.labels = { ...bs.metadata.labels, ...labels };
      });
    },
    async DeleteBlockStorage(req, call) {
      const name = validateName(req.name, 'name');
      // Up front: protected, in use, or another disk or a VM still needs it (the controller's
      // finalizer holds such a disk anyway, whichever entrance deleted it).
      await deleteChecked(store, 'BlockStorage', name, (bs) => admitDelete(store, bs));
      await waitFor(store, 'BlockStorage', name, (obj) => (obj ? undefined : { done: true }), { deadline: call.deadline, signal: call.signal, what: 'be deleted', untilDeleted: true });
      return {};
    },
    async SetAvailableBlockStorage(req, call) {
      // Refused here even when nothing would change, which admission cannot see.
      return setSpec(req, call, (bs) => {
        if (bs.status?.in_use_by) throw new FailedPreconditionError(`BlockStorage "${bs.metadata.name}" is attached to VirtualMachine "${bs.status.in_use_by}"`);
        delete bs.spec.protected;
        delete bs.spec.claimed_by;
      });
    },
    async SetInuseBlockStorage(req, call) {
      // A protected disk cannot be claimed: the kind's admission (blockstorage.claim-protected).
      return setSpec(req, call, (bs) => {
        bs.spec.claimed_by = bs.spec.claimed_by ?? 'n0stack-user';
      });
    },
    async DownloadBlockStorage(req) {
      const bs = await get(req.name);
      downloadableOn(bs);
      if (!context.consoles) throw new FailedPreconditionError('this facade serves no downloads (start it with a console listener: its HTTP side serves them)');
      // The URL carries no credential: the download asks for the caller's token like every call.
      return { download_url: `${context.consoles.httpBase()}${DOWNLOAD_PATH}/${encodeURIComponent(bs.metadata.name)}` };
    },
    async SetProtectedBlockStorage(req, call) {
      // A disk in use cannot be protected: the kind's admission (blockstorage.protect-in-use).
      return setSpec(req, call, (bs) => {
        bs.spec.protected = true;
      });
    },
  };
}
