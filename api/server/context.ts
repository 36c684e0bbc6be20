// What every facade handler gets: the store and the bounds of the call it serves.
import type { Store } from '../store/store';

export interface FacadeContext {
  store: Store;
  /** Default wait when the caller set no deadline. */
  defaultWaitMs: number;
  /** Issues short-lived console URLs (OpenConsole); absent when the facade serves no consoles. */
  consoles?: ConsoleIssuer;
}

export interface ConsoleIssuer {
  issue(vm: import('../types').VirtualMachine, kind: 'serial' | 'vnc'): Promise<{ console_url: string; expires_at: string }>;
}

export interface CallInfo {
  /** Epoch ms by which the call must answer. */
  deadline: number;
  /** Aborted when the client cancels. */
  signal: AbortSignal;
}

export type Handler = (request: any, call: CallInfo) => Promise<unknown>;
export type ServiceHandlers = Record<string, Handler>;

export const FINALIZERS = {
  network: 'n0stack.io/network',
  blockStorage: 'n0stack.io/blockstorage',
  virtualMachine: 'n0stack.io/virtualmachine',
} as const;

/** Drops keys whose value is undefined, so documents stay minimal (and schema-valid). */
export function compact<T extends Record<string, unknown>>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
