import { IpcError } from '../errors.js';
import type { HandleState } from './endpoint.js';

/** @internal Returns the state behind a live handle, or undefined when it is dead. */
export const kHandleState: unique symbol = Symbol('ftl-ipc.handleState');
/** @internal Kills a handle object after its state was sent away. */
export const kRelease: unique symbol = Symbol('ftl-ipc.release');

/**
 * Something that can travel in a message's `handles`: a Channel endpoint (and, later, a data pipe
 * end). Sending moves it: the sender's object dies and the receiver gets a live one.
 */
export interface Handle {
  close(): void;
  readonly closed: Promise<unknown>;
  [kHandleState](): HandleState | undefined;
  [kRelease](): void;
}

const adopters = new Map<string, (state: HandleState) => Handle>();

/** Lets a handle class turn received states of its kind into live objects. */
export function registerHandleKind(kind: string, adopt: (state: HandleState) => Handle): void {
  adopters.set(kind, adopt);
}

export function adoptHandle(state: HandleState): Handle {
  const adopt = adopters.get(state.kind);
  if (adopt === undefined) {
    state.close();
    throw new IpcError('INVALID_MESSAGE', `received a handle of unknown kind '${state.kind}'`);
  }
  return adopt(state);
}
