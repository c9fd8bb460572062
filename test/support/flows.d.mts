// Types for flows.mjs (see the comment at its top).
import type { DpfDescription } from '../../bindings/dpf/description.js';

export interface Flow {
  proto: 6 | 17;
  src: number;
  dst: number;
  sport: number;
  dport: number;
}

export function generator(seed: number): () => number;
export function makeFlows(count: number, seed?: number): Flow[];
export function flowExpression(f: Flow): string;
export function fiveTuple(f: Flow): DpfDescription;
export function flowFrame(f: Flow): Uint8Array;
export function flowTraffic(flows: readonly Flow[], packets: number, options?: { unmatched?: number; seed?: number }): Generator<Uint8Array>;
