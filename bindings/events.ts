// The one rule for 'error' events, shared by every netpd emitter (PacketDispatcher,
// AfPacketSource).
//
// Why. Node's EventEmitter throws an 'error' nobody listens to, which is right for
// a call the user made and wrong for ours: our errors come out of a dispatch loop or a
// libuv callback, where a throw would cut a burst in half (its packets neither
// delivered nor counted) or end the process from inside the event loop. So an 'error'
// with no listener becomes a process warning (`process.emitWarning`, with the error's
// code), printed by Node on stderr and seen by `process.on('warning')`: never thrown
// into the loop, never silent. Errors passed to either are always NetpdErrors.

import type { EventEmitter } from 'node:events';
import type { NetpdError } from './errors.js';

/**
 * Emits `err` as 'error' (with `args` after it) when someone listens, else warns.
 * Returns true when it was emitted.
 */
export function emitError(emitter: EventEmitter, err: NetpdError, ...args: unknown[]): boolean {
  if (emitter.listenerCount('error') > 0) return emitter.emit('error', err, ...args);
  process.emitWarning(err.message, { code: err.code, detail: 'no \'error\' listener was attached, so netpd warns instead of throwing' });
  return false;
}

/**
 * Node's AbortError (what fs, events.on and timers/promises reject with): name
 * 'AbortError', code 'ABORT_ERR', the signal's reason as its cause.
 */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(signal: AbortSignal) {
    super('The operation was aborted', { cause: signal.reason });
    this.name = 'AbortError';
  }
}

/** Throws AbortError when `signal` is aborted. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(signal);
}
