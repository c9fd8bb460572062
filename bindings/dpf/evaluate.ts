// The reference meaning of a DPF description, as plain code: the oracle the tests hold
// the trie, the core and the BPF translation (from-bpf.ts) to, and the definition a
// reader can check description.ts's prose against. It is deliberately the naive loop —
// one atom at a time, every load bounds-checked — and never runs on the hot path
// (the dispatcher matches descriptions in the core, merged into one trie).

import type { CanonicalAtom } from './description.js';

// Big-endian load of `size` bytes at `at`, or undefined when it would read past the
// captured bytes (which fails the atom, as a load past the captured length fails in BPF).
function load(packet: Uint8Array, at: number, size: number): number | undefined {
  if (at + size > packet.length) return undefined;
  let v = 0;
  for (let i = 0; i < size; i++) v = v * 256 + packet[at + i];
  return v;
}

/**
 * True when `packet` (its captured bytes) satisfies every atom of the canonical
 * description `atoms`, read in order against a base that starts at byte 0.
 */
export function matchDescription(atoms: readonly CanonicalAtom[], packet: Uint8Array): boolean {
  let base = 0;
  for (const a of atoms) {
    if (a.kind === 'compare') {
      const v = load(packet, base + a.offset, a.size);
      if (v === undefined || ((v & a.mask) >>> 0) !== a.value) return false;
    } else {
      let length = 0;
      if (a.size > 0) {
        const v = load(packet, base + a.offset, a.size);
        if (v === undefined) return false;
        length = ((v & a.mask) >>> 0) * a.scale;
      }
      base += length + a.add;
    }
  }
  return true;
}
