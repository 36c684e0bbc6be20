// ResourceService: the documents themselves, for n0ctl apply/get/diff/delete/watch. The same
// validation and seed rules apply as through the seed's RPCs.
import { compare, type Operation } from 'fast-json-patch';
import { API_VERSION, isKind, type AnyResource, type Kind } from '../types';
import { InvalidArgumentError, isN0Error } from '../errors';
import { validateName } from '../names';
import { validateDocument } from '../schema';
import { checkBlockStorageSpec, checkVirtualMachineSpec } from '../rules';
import { getCondition } from '../conditions';
import { waitFor, type WaitVerdict } from './wait';
import { blockStorageSettled } from './blockstorage';
import { vmSettled } from './virtualmachine';
import { given } from './convert';
import { parseLabelSelector, matchesLabels } from '../store/labels';
import { toServiceError } from './status';
import { FINALIZERS, type FacadeContext, type Handler } from './context';
import type { ServerWritableStream } from '@grpc/grpc-js';

const KIND_FINALIZER: Partial<Record<Kind, string>> = {
  Network: FINALIZERS.network,
  BlockStorage: FINALIZERS.blockStorage,
  VirtualMachine: FINALIZERS.virtualMachine,
};

function parseDocument(json: unknown): AnyResource {
  if (typeof json !== 'string' || !json) throw new InvalidArgumentError('document_json is required', 'document_json');
  let doc: AnyResource;
  try { doc = JSON.parse(json); } catch (err) { throw new InvalidArgumentError(`document_json is not JSON: ${(err as Error).message}`, 'document_json'); }
  validateDocument(doc);
  if (doc.kind === 'VirtualMachine') checkVirtualMachineSpec(doc.spec);
  if (doc.kind === 'BlockStorage') checkBlockStorageSpec(doc.spec);
  return doc;
}

function kindOf(value: unknown): Kind {
  if (!isKind(value)) throw new InvalidArgumentError(`kind ${JSON.stringify(value)} is not one of Node, Network, BlockStorage, Image, VirtualMachine`, 'kind');
  return value;
}

/** The user-owned part of a document: what apply compares and writes. */
const desired = (doc: AnyResource) => ({ labels: doc.metadata.labels ?? {}, annotations: doc.metadata.annotations ?? {}, spec: doc.spec });

/**
 * When an applied document has settled. Disks and VMs pass through Ready=False while they are
 * made (Creating, InProgress, Scheduled, Converging), so they use the same judges as their seed
 * RPCs; for the other kinds any Ready verdict of the written generation is final.
 */
export function applySettled(written: AnyResource): (obj: AnyResource | undefined) => WaitVerdict<AnyResource> {
  const generation = written.metadata.generation ?? 1;
  if (written.kind === 'BlockStorage') return blockStorageSettled(generation) as (obj: AnyResource | undefined) => WaitVerdict<AnyResource>;
  if (written.kind === 'VirtualMachine') return vmSettled(generation, written.spec.run_state ?? 'RUNNING') as (obj: AnyResource | undefined) => WaitVerdict<AnyResource>;
  return (obj) => {
    const st = obj?.status as { observedGeneration?: number; conditions?: any[] } | undefined;
    if (!obj || !st || (st.observedGeneration ?? 0) < generation) return undefined;
    const ready = getCondition(st.conditions, 'Ready');
    return ready && ready.status !== 'Unknown' ? { done: obj } : undefined;
  };
}

export function resourceService(ctx: FacadeContext): { Apply: Handler; Get: Handler; List: Handler; Delete: Handler; Watch: (call: ServerWritableStream<any, any>) => void } {
  const { store } = ctx;
  return {
    async Apply(req, call) {
      const doc = parseDocument(req.document_json);
      let existing: AnyResource | undefined;
      try { existing = await store.get(doc.kind, doc.metadata.name); } catch (err) { if (!isN0Error(err, 'NotFound')) throw err; }
      let diff: Operation[];
      let result: 'created' | 'configured' | 'unchanged';
      let written: AnyResource;
      if (!existing) {
        diff = compare({}, desired(doc));
        result = 'created';
        const finalizer = KIND_FINALIZER[doc.kind];
        const fresh = { apiVersion: API_VERSION, kind: doc.kind, metadata: { ...doc.metadata, finalizers: finalizer ? [finalizer] : undefined }, spec: doc.spec } as AnyResource;
        delete (fresh.metadata as any).resourceVersion;
        if (!fresh.metadata.finalizers) delete fresh.metadata.finalizers;
        written = req.dry_run ? fresh : await store.create(fresh);
      } else {
        diff = compare(desired(existing), desired(doc));
        result = diff.length ? 'configured' : 'unchanged';
        const next = structuredClone(existing);
        next.metadata.labels = doc.metadata.labels;
        next.metadata.annotations = doc.metadata.annotations;
        next.spec = doc.spec as any;
        written = req.dry_run || !diff.length ? existing : await store.update(next);
      }
      if (req.wait && !req.dry_run && result !== 'unchanged') {
        written = await waitFor(store, doc.kind, doc.metadata.name, applySettled(written), { deadline: call.deadline, signal: call.signal, what: 'become Ready' });
      }
      return { document_json: JSON.stringify(written), result, diff_json: JSON.stringify(diff) };
    },
    async Get(req) {
      return { document_json: JSON.stringify(await store.get(kindOf(req.kind), validateName(req.name, 'name'))) };
    },
    async List(req) {
      const { items, resourceVersion } = await store.list(kindOf(req.kind), { labelSelector: given(req.label_selector) });
      return { documents_json: items.map((i) => JSON.stringify(i)), resource_version: resourceVersion };
    },
    async Delete(req, call) {
      const kind = kindOf(req.kind);
      const name = validateName(req.name, 'name');
      await store.delete(kind, name);
      if (req.wait) await waitFor(store, kind, name, (obj) => (obj ? undefined : { done: true }), { deadline: call.deadline, signal: call.signal, what: 'be deleted' });
      return {};
    },
    Watch(call) {
      const controller = new AbortController();
      call.on('cancelled', () => controller.abort());
      call.on('close', () => controller.abort());
      (async () => {
        const kind = kindOf(call.request.kind);
        const selector = parseLabelSelector(given(call.request.label_selector));
        for await (const event of store.watch(kind, { resourceVersion: given(call.request.resource_version), signal: controller.signal })) {
          if (!matchesLabels(event.object.metadata.labels, selector)) continue;
          call.write({ type: event.type, document_json: JSON.stringify(event.object) });
        }
        call.end();
      })().catch((err) => {
        if (controller.signal.aborted) return;
        call.destroy(Object.assign(new Error((err as Error).message), toServiceError(err)));
      });
    },
  };
}
