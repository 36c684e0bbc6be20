// VirtualMachineService. Power actions are intents on the document, bound to its uid and
// resourceVersion: spec.run_state for levels (RUNNING/SHUTDOWN/PAUSED), spec.action_request for
// one-shot reboots. A second action while one is under way is refused, never done twice.
import { randomUUID } from 'node:crypto';
import { API_VERSION, ANNOTATIONS, type VirtualMachine, type VirtualMachineSpec } from '../types';
import { ConflictError, FailedPreconditionError, InvalidArgumentError, isN0Error } from '../errors';
import { hashPassword, verifyPassword } from '../logic/password';
import { validateName } from '../names';
import { getCondition } from '../conditions';
import { waitFor, type WaitVerdict } from './wait';
import { given, mapOrUndefined, num, virtualMachineMessage, seedAnnotations } from './convert';
import { admitted, compact, type CallInfo, type FacadeContext, type ServiceHandlers } from './context';

type RunState = NonNullable<VirtualMachineSpec['run_state']>;

/** Done when the controller observed this generation and the VM is in `state` (and did `actionId`). */
export function vmSettled(generation: number, state: RunState, actionId?: string) {
  return (vm: VirtualMachine | undefined): WaitVerdict<VirtualMachine> => {
    if (!vm) return { fail: new FailedPreconditionError('the virtual machine was deleted while waiting') };
    const st = vm.status;
    if (!st || (st.observedGeneration ?? 0) < generation) return undefined;
    const ready = getCondition(st.conditions, 'Ready');
    // The first failed starts are retried after a short back-off; a crash loop is the answer.
    if (st.state === 'FAILED' && ready?.reason && RETRYING_REASONS.has(ready.reason)) return undefined;
    if (st.state === 'FAILED' || (ready?.status === 'False' && ready.reason && TERMINAL_REASONS.has(ready.reason))) {
      return { fail: new FailedPreconditionError(`VirtualMachine "${vm.metadata.name}": ${ready?.reason ?? 'Failed'}: ${ready?.message ?? ''}`) };
    }
    if (actionId && st.last_action_id !== actionId) return undefined;
    return st.state === state ? { done: vm } : undefined;
  };
}

/** A failed VM whose controller is about to start it again (crashStatus in controllers/virtualmachine.ts). */
const RETRYING_REASONS = new Set(['StartFailed', 'GuestCrashed']);

/**
 * The SHA-512 crypt hash stored for a login password given in clear (the seed's
 * CreateVirtualMachine, or spec.login_password of an applied document). `previous`, the stored
 * hash, is kept when it is of the same password, so applying one manifest twice changes nothing.
 */
export function loginPasswordHash(password: unknown, field: string, previous?: string): string {
  if (typeof password !== 'string' || password.length === 0 || password.length > 256) {
    throw new InvalidArgumentError(`${field} must be a string of 1-256 characters`, field);
  }
  return previous !== undefined && verifyPassword(password, previous) ? previous : hashPassword(password);
}

/** Reasons a waiting client should hear about at once rather than at its deadline. */
const TERMINAL_REASONS = new Set(['Unschedulable', 'InvalidSpec', 'AddressConflict', 'NetworkFull', 'BlockStorageInUse', 'BlockStorageNotFound', 'BlockStorageBeingDeleted', 'NetworkNotFound']);

export function virtualMachineService(context: FacadeContext): ServiceHandlers {
  // The kind's rules (the seed's spec rules, disks and networks it may use, nics and disks fixed
  // after creation) are its admission's (api/admission/virtualmachine.ts).
  const ctx = admitted(context);
  const { store } = ctx;

  async function intent(req: any, call: CallInfo, state: RunState, action?: NonNullable<VirtualMachineSpec['action_request']>['action']) {
    const name = validateName(req.name, 'name');
    const actionId = action ? randomUUID() : undefined;
    const written = await writeIntent(name, state, action, actionId);
    return virtualMachineMessage(await waitFor(store, 'VirtualMachine', name, vmSettled(written.metadata.generation ?? 1, state, actionId), {
      deadline: call.deadline, signal: call.signal, what: `become ${state}${action ? ` after ${action}` : ''}`, from: written,
    }));
  }

  /**
   * Writes the intent at the resourceVersion it was judged on. A conflict with a write that left
   * the spec as it was (the controller's status, a finalizer) is judged and written again; one with
   * another spec change (a concurrent action) stays ABORTED.
   */
  async function writeIntent(name: string, state: RunState, action: NonNullable<VirtualMachineSpec['action_request']>['action'] | undefined, actionId: string | undefined): Promise<VirtualMachine> {
    let generation: number | undefined;
    for (let attempt = 0; ; attempt++) {
      const current = await store.get('VirtualMachine', name);
      if (generation !== undefined && current.metadata.generation !== generation) throw new ConflictError('VirtualMachine', name);
      generation = current.metadata.generation;
      try {
        return await store.update(judgedIntent(current, state, action, actionId));
      } catch (err) {
        if (!isN0Error(err, 'Conflict') || attempt >= 4) throw err;
      }
    }
  }

  function judgedIntent(current: VirtualMachine, state: RunState, action: NonNullable<VirtualMachineSpec['action_request']>['action'] | undefined, actionId: string | undefined): VirtualMachine {
    const name = current.metadata.name;
    if (current.metadata.deletionTimestamp) throw new FailedPreconditionError(`VirtualMachine "${name}" is being deleted`);
    const pending = current.spec.action_request;
    if (pending && pending.id !== current.status?.last_action_id) {
      throw new FailedPreconditionError(`VirtualMachine "${name}" has a ${pending.action} under way; wait for it to finish`);
    }
    if (action === 'REBOOT' || action === 'HARD_REBOOT') {
      if (current.status?.state !== 'RUNNING') throw new FailedPreconditionError(`VirtualMachine "${name}" is ${current.status?.state ?? 'PENDING'}, not RUNNING; it cannot be rebooted`);
    }
    const next = structuredClone(current);
    next.spec.run_state = state;
    if (actionId && action) next.spec.action_request = { id: actionId, action };
    return next;
  }

  return {
    async CreateVirtualMachine(req, call) {
      const name = validateName(req.name, 'name');
      (req.nics ?? []).forEach((n: any, i: number) => {
        if (mapOrUndefined(n.annotations)) throw new InvalidArgumentError(`nics[${i}].annotations: annotations of a NIC are not stored here; put them on the VirtualMachine`, `nics[${i}].annotations`);
      });
      const annotations = seedAnnotations(req.annotations);
      const spec = compact({
        request_cpu_milli_core: given(num(req.request_cpu_milli_core)),
        limit_cpu_milli_core: num(req.limit_cpu_milli_core),
        request_memory_bytes: given(num(req.request_memory_bytes)),
        limit_memory_bytes: num(req.limit_memory_bytes),
        block_storage_names: given(req.block_storage_names),
        nics: given((req.nics ?? []).map((n: any) => compact({
          network_name: n.network_name, hardware_address: given(n.hardware_address), ipv4_address: given(n.ipv4_address), ipv6_address: given(n.ipv6_address),
        }))),
        uuid: given(req.uuid) ?? randomUUID(),
        login_username: given(req.login_username),
        // The seed's request carries the password in clear; only its hash is ever written.
        login_password_hash: given(req.login_password) === undefined ? undefined : loginPasswordHash(req.login_password, 'login_password'),
        ssh_authorized_keys: given(req.ssh_authorized_keys),
        node_name: annotations?.[ANNOTATIONS.vmRequestNodeName],
        run_state: 'RUNNING',
      }) as VirtualMachineSpec;
      const created = await store.create({
        apiVersion: API_VERSION, kind: 'VirtualMachine',
        metadata: compact({ name, annotations, labels: mapOrUndefined(req.labels) }),
        spec,
      } as VirtualMachine);
      return virtualMachineMessage(await waitFor(store, 'VirtualMachine', name, vmSettled(created.metadata.generation ?? 1, 'RUNNING'), {
        deadline: call.deadline, signal: call.signal, what: 'become RUNNING', from: created,
      }));
    },
    async ListVirtualMachines(req) {
      const { items } = await store.list('VirtualMachine', { labelSelector: given(req.label_selector) });
      return { virtual_machines: items.map(virtualMachineMessage) };
    },
    async GetVirtualMachine(req) {
      return virtualMachineMessage(await store.get('VirtualMachine', validateName(req.name, 'name')));
    },
    async UpdateVirtualMachine(req) {
      const name = validateName(req.name, 'name');
      const current = await store.get('VirtualMachine', name);
      const next = structuredClone(current);
      for (const field of ['request_cpu_milli_core', 'limit_cpu_milli_core', 'request_memory_bytes', 'limit_memory_bytes'] as const) {
        const value = given(num(req[field]));
        if (value !== undefined) next.spec[field] = value;
      }
      // The seed's field; the VM's admission refuses a change (disks are fixed after creation).
      const disks = given(req.block_storage_names);
      if (disks !== undefined) next.spec.block_storage_names = disks;
      const annotations = seedAnnotations(req.annotations);
      if (annotations) next.metadata.annotations = { ...next.metadata.annotations, ...annotations };
      const labels = mapOrUndefined(req.labels);
      if (labels) next.metadata.labels = { ...next.metadata.labels, ...labels };
      // CPU and memory take effect at the next boot; the reservation follows at once.
      return virtualMachineMessage(await store.update(next));
    },
    async DeleteVirtualMachine(req, call) {
      const name = validateName(req.name, 'name');
      await store.delete('VirtualMachine', name);
      await waitFor(store, 'VirtualMachine', name, (obj) => (obj ? undefined : { done: true }), { deadline: call.deadline, signal: call.signal, what: 'be deleted', untilDeleted: true });
      return {};
    },
    BootVirtualMachine: (req, call) => intent(req, call, 'RUNNING'),
    RebootVirtualMachine: (req, call) => intent(req, call, 'RUNNING', req.hard ? 'HARD_REBOOT' : 'REBOOT'),
    ShutdownVirtualMachine: (req, call) => intent(req, call, 'SHUTDOWN', req.hard ? 'HARD_SHUTDOWN' : undefined),
    SaveVirtualMachine: (req, call) => intent(req, call, 'PAUSED'),
    async OpenConsole(req, call) {
      const name = validateName(req.name, 'name');
      const vm = await store.get('VirtualMachine', name);
      if (!ctx.consoles) throw new FailedPreconditionError('this facade serves no consoles (start it with a console listener)');
      return ctx.consoles.issue(vm, req.vnc ? 'vnc' : 'serial', call.principal);
    },
  };
}
