// Small helpers shared by tests: frames into arena slots, and the NetpdError a call throws.
import { expect } from 'vitest';
import type { Arena } from '../../bindings/arena.js';
import { NetpdError } from '../../bindings/errors.js';

/** Puts `frames` into fresh slots (timestamps 1000 + i s) and returns the vector holding them. */
export function load(arena: Arena, frames: Uint8Array[]): Uint32Array {
  const vec = arena.burstVector(frames.length);
  expect(arena.allocBurst(vec, frames.length)).toBe(frames.length);
  frames.forEach((f, i) => {
    arena.bytes.set(f, arena.dataOffset(vec[i]));
    arena.setPacket(vec[i], f.length, f.length, 1000 + i, 0, 0);
  });
  return vec;
}

/** The NetpdError `fn` throws (fails the test if it throws something else, or nothing). */
export function thrown(fn: () => unknown): NetpdError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NetpdError);
    return e as NetpdError;
  }
  throw new Error('expected a NetpdError, nothing was thrown');
}
