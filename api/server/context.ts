// What every facade handler gets: the store and the bounds of the call it serves.
import type { Store } from '../store/store';
import { AdmittingStore } from '../admission/store';
import type { Principal } from './auth';

export interface FacadeContext {
  store: Store;
  /** Default wait when the caller set no deadline. */
  defaultWaitMs: number;
  /** Issues short-lived console URLs (OpenConsole); absent when the facade serves no consoles. */
  consoles?: ConsoleIssuer;
}

/** A disk's bytes from its node (the agent's ReadBlockStorage), as api/ sees them without importing agent/. */
export interface DiskContent {
  size: number;
  chunks: AsyncIterable<Buffer>;
}

/** Where the HTTP side serves a disk's download (GET <base>/download/blockstorages/<name>). */
export const DOWNLOAD_PATH = '/download/blockstorages';

export interface ConsoleIssuer {
  /** https://host:port (http:// without TLS) of the HTTP side, as clients reach it. */
  httpBase(): string;
  /** A ticket for `vm`'s console, bound to the caller who asked for it. */
  issue(vm: import('../types').VirtualMachine, kind: 'serial' | 'vnc', user: Principal | undefined): Promise<{ console_url: string; expires_at: string }>;
}

export interface CallInfo {
  /** Epoch ms by which the call must answer. */
  deadline: number;
  /** Aborted when the client cancels. */
  signal: AbortSignal;
  /** Who calls; undefined on a facade without authentication (tests). */
  principal?: Principal;
}

export type Handler = (request: any, call: CallInfo) => Promise<unknown>;
export type ServiceHandlers = Record<string, Handler>;

// Defined with the admission that defaults them onto created objects; here for the controllers.
export { FINALIZERS } from '../admission/finalizers';

/** The facade's context with every create and spec update going through the kinds' admission. */
export function admitted(ctx: FacadeContext): FacadeContext {
  return ctx.store instanceof AdmittingStore ? ctx : { ...ctx, store: new AdmittingStore(ctx.store) };
}

/** Drops keys whose value is undefined, so documents stay minimal (and schema-valid). */
export function compact<T extends Record<string, unknown>>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
