// ResourceService: the documents themselves, for n0ctl apply/get/diff/delete/watch. The same
// admission (api/admission/) as the seed's RPCs judges every create and update, a dry run too; a
// delete is never refused for dependants: the object stays in deletion until its controller's
// protection finalizer sees them gone.
import { compare, type Operation } from 'fast-json-patch';
import { API_VERSION, isKind, type AnyResource, type Kind } from '../types';
import { FailedPreconditionError, InvalidArgumentError, isN0Error } from '../errors';
import { validateName } from '../names';
import { validateDocument } from '../schema';
import { admitCreate, admitUpdate, DELETION_BLOCKED } from '../admission';
import { getCondition } from '../conditions';
import { waitFor, type WaitVerdict } from './wait';
import { blockStorageSettled } from './blockstorage';
import { loginPasswordHash, vmSettled } from './virtualmachine';
import { given } from './convert';
import { parseLabelSelector, matchesLabels } from '../store/labels';
import { toServiceError } from './status';
import { admitted, type FacadeContext, type Handler } from './context';
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { EventStore } from '../store/events';

/** The document, and a VirtualMachine's clear spec.login_password taken out of it (it is never stored). */
function parseDocument(json: unknown): { doc: AnyResource; loginPassword?: unknown } {
  if (typeof json !== 'string' || !json) throw new InvalidArgumentError('document_json is required', 'document_json');
  let doc: AnyResource;
  try { doc = JSON.parse(json); } catch (err) { throw new InvalidArgumentError(`document_json is not JSON: ${(err as Error).message}`, 'document_json'); }
  const raw = doc as unknown as { kind?: unknown; spec?: Record<string, unknown> } | null;
  const spec = raw?.kind === 'VirtualMachine' ? raw.spec : undefined;
  let loginPassword: unknown;
  if (spec && typeof spec === 'object' && 'login_password' in spec) {
    if (spec.login_password_hash !== undefined) throw new InvalidArgumentError('give spec.login_password or spec.login_password_hash, not both', 'spec.login_password');
    loginPassword = spec.login_password;
    delete spec.login_password;
  }
  validateDocument(doc);
  return { doc, loginPassword };
}

function kindOf(value: unknown): Kind {
  if (!isKind(value)) throw new InvalidArgumentError(`kind ${JSON.stringify(value)} is not one of Node, Network, BlockStorage, Image, VirtualMachine`, 'kind');
  return value;
}

/** The Events of the store (List and Watch of kind Event; api/store/events.ts). */
function eventsOf(store: FacadeContext['store']): EventStore {
  if (!store.events) throw new FailedPreconditionError('this store keeps no Events');
  return store.events;
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

/** Why a deleted object is still there, from its controller's condition (undefined: no reason given yet). */
export function deletionBlocked(obj: AnyResource | undefined): string | undefined {
  if (!obj?.metadata.deletionTimestamp) return undefined;
  const conditions = (obj.status as { conditions?: any[] } | undefined)?.conditions;
  // A Node's Ready is its heartbeat's: its protection finalizer says why in a Deleting condition.
  const why = getCondition(conditions, obj.kind === 'Node' ? 'Deleting' : 'Ready');
  return why?.reason === DELETION_BLOCKED ? why.message : undefined;
}

export function resourceService(context: FacadeContext): { Apply: Handler; Get: Handler; List: Handler; Delete: Handler; Watch: (call: ServerWritableStream<any, any>) => void } {
  const { store } = admitted(context);
  return {
    async Apply(req, call) {
      const { doc, loginPassword } = parseDocument(req.document_json);
      let existing: AnyResource | undefined;
      try { existing = await store.get(doc.kind, doc.metadata.name); } catch (err) { if (!isN0Error(err, 'NotFound')) throw err; }
      if (loginPassword !== undefined && doc.kind === 'VirtualMachine') {
        const previous = existing?.kind === 'VirtualMachine' ? existing.spec.login_password_hash : undefined;
        doc.spec.login_password_hash = loginPasswordHash(loginPassword, 'spec.login_password', previous);
      }
      let diff: Operation[];
      let result: 'created' | 'configured' | 'unchanged';
      let written: AnyResource;
      if (!existing) {
        diff = compare({}, desired(doc));
        result = 'created';
        const fresh = { apiVersion: API_VERSION, kind: doc.kind, metadata: { ...doc.metadata }, spec: doc.spec } as AnyResource;
        delete (fresh.metadata as any).resourceVersion;
        if (req.dry_run) {
          // What it names may come from the same manifest, which a dry run does not create.
          await admitCreate(store, fresh, { references: false });
          written = fresh;
        } else {
          written = await store.create(fresh);
        }
      } else {
        diff = compare(desired(existing), desired(doc));
        result = diff.length ? 'configured' : 'unchanged';
        const next = structuredClone(existing);
        next.metadata.labels = doc.metadata.labels;
        next.metadata.annotations = doc.metadata.annotations;
        next.spec = doc.spec as any;
        if (req.dry_run && diff.length) await admitUpdate(store, existing, next);
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
      if (req.kind === 'Event') {
        const { items, resourceVersion } = await eventsOf(store).list();
        return { documents_json: items.map((i) => JSON.stringify(i)), resource_version: resourceVersion };
      }
      const { items, resourceVersion } = await store.list(kindOf(req.kind), { labelSelector: given(req.label_selector) });
      return { documents_json: items.map((i) => JSON.stringify(i)), resource_version: resourceVersion };
    },
    async Delete(req, call) {
      const kind = kindOf(req.kind);
      const name = validateName(req.name, 'name');
      await store.delete(kind, name);
      // A delete that dependants hold is answered at once, with what it waits for (the object
      // stays marked and goes when they do), not at the caller's deadline.
      if (req.wait) await waitFor(store, kind, name, (obj) => {
        if (!obj) return { done: true };
        const blocked = deletionBlocked(obj);
        return blocked ? { fail: new FailedPreconditionError(`${kind} "${name}" is marked for deletion and waits: ${blocked}`) } : undefined;
      }, { deadline: call.deadline, signal: call.signal, what: 'be deleted', untilDeleted: true });
      return {};
    },
    Watch(call) {
      const controller = new AbortController();
      call.on('cancelled', () => controller.abort());
      call.on('close', () => controller.abort());
      (async () => {
        if (call.request.kind === 'Event') {
          for await (const event of eventsOf(store).watch({ resourceVersion: given(call.request.resource_version), signal: controller.signal })) {
            call.write({ type: event.type, document_json: JSON.stringify(event.object) });
          }
          call.end();
          return;
        }
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
