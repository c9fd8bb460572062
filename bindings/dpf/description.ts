// DPF descriptions (Engler & Kaashoek, "DPF: Fast, Flexible Message Demultiplexing
// using Dynamic Code Generation", SIGCOMM 1996): a description is a conjunction of
// atoms read left to right against a header base that starts at the first byte of the
// frame.
//
//   compare  { offset, size, mask?, value }
//            accepts when (load(base + offset, size) & mask) === value, the load
//            big-endian (network order); a load past the captured bytes fails the atom.
//   shift    { shift: { offset?, size?, mask?, scale?, add? } }
//            moves the base: base += (load(base + offset, size) & mask) * scale + add;
//            with size 0 (the default) nothing is loaded and base += add. IPv4's header
//            length is { offset: 14, size: 1, mask: 0x0f, scale: 4 } from the frame;
//            an IPv6 extension header's is { offset: 1, size: 1, mask: 0xff, scale: 8,
//            add: 8 } from its start. A load past the captured bytes fails the atom.
//
// Descriptions are put in a canonical form before they are merged: between two shifts
// the compares are independent of one another, so they are sorted by (offset, size,
// mask) — two owners that test the same fields in a different order then share their
// trie path — and a field compared twice is compared once (or, with two values, the
// description can never match and is refused). Two descriptions with the same
// canonical form are equal; the dispatcher refuses the second (EDUPDESC), which the
// OSKit left as "caller must make descriptions unique". Fields are compared as written:
// [12:2] = 0x0800 and [12:1] = 0x08 plus [13:1] = 0x00 test the same bytes but are
// different descriptions, and a shift by a constant is not folded into the offsets
// after it, so such pairs are not caught as equal (nor overlapping contradictions as
// never matching); compileFilter's descriptions always use the same fields for the
// same test.
//
// The canonical atom count is a description's specificity: when several match a
// packet, the one with the longest matching path in the merged trie wins.

import { NetpdError } from '../errors.js';

export interface DpfCompare {
  /** Byte offset from the current header base. */
  offset: number;
  size: 1 | 2 | 4;
  /** Bits compared; all ones for the size when omitted. Never 0. */
  mask?: number;
  /** The value the masked field must equal; no bits outside the mask. */
  value: number;
}

export interface DpfShiftSpec {
  /** Byte offset from the current base of the length field (size > 0). */
  offset?: number;
  /** 0 (default: no load, the base moves by `add`), 1, 2 or 4. */
  size?: 0 | 1 | 2 | 4;
  /** Bits of the length field that count; all ones for the size when omitted. */
  mask?: number;
  /** Bytes per unit of the length field: 1..256, default 1. */
  scale?: number;
  /** Bytes added after scaling: 0..65535, default 0. */
  add?: number;
}

export interface DpfShift {
  shift: DpfShiftSpec;
}

export type DpfAtom = DpfCompare | DpfShift;

/** A DPF description: its atoms, a conjunction, read in order. */
export type DpfDescription = readonly DpfAtom[];

/** A compare in canonical form: every field present. */
export interface CanonicalCompare {
  kind: 'compare';
  offset: number;
  size: 1 | 2 | 4;
  mask: number;
  value: number;
}

/** A shift in canonical form: every field present (size 0: offset 0, mask 0, scale 0). */
export interface CanonicalShift {
  kind: 'shift';
  offset: number;
  size: 0 | 1 | 2 | 4;
  mask: number;
  scale: number;
  add: number;
}

export type CanonicalAtom = CanonicalCompare | CanonicalShift;

/** Most atoms a description may hold. */
export const DPF_MAX_ATOMS = 64;
/** Largest offset (and shift `add`) an atom may name. */
export const DPF_MAX_OFFSET = 65535;

const fullMask = (size: number): number => (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1);

function bad(message: string, index?: number): NetpdError {
  return new NetpdError('EBADDESC', message, index === undefined ? {} : { details: { atom: index } });
}

function integerIn(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

function canonicalAtom(atom: unknown, i: number): CanonicalAtom {
  if (typeof atom !== 'object' || atom === null) throw bad(`atom ${i} is not an object`, i);
  if ('shift' in atom && 'value' in atom) throw bad(`atom ${i} has both shift and value: a compare or a shift, not both`, i);
  for (const [key, v] of Object.entries(atom)) {
    if (v === null) throw bad(`atom ${i}: ${key} is null (leave it out for its default)`, i);
  }
  if ('shift' in atom) {
    const s = (atom as DpfShift).shift;
    if (typeof s !== 'object' || s === null) throw bad(`atom ${i}: shift must be an object`, i);
    for (const [key, v] of Object.entries(s)) {
      if (v === null) throw bad(`atom ${i}: shift.${key} is null (leave it out for its default)`, i);
    }
    const size = s.size ?? 0;
    if (size !== 0 && size !== 1 && size !== 2 && size !== 4) throw bad(`atom ${i}: shift size must be 0, 1, 2 or 4, got ${String(size)}`, i);
    const add = s.add ?? 0;
    if (!integerIn(add, 0, DPF_MAX_OFFSET)) throw bad(`atom ${i}: shift add must be an integer in 0..${DPF_MAX_OFFSET}, got ${String(add)}`, i);
    if (size === 0) {
      if (s.offset !== undefined || s.mask !== undefined || s.scale !== undefined) {
        throw bad(`atom ${i}: a shift without a length field (size 0) takes only add`, i);
      }
      if (add === 0) throw bad(`atom ${i}: a shift by nothing (size 0, add 0)`, i);
      return { kind: 'shift', offset: 0, size: 0, mask: 0, scale: 0, add };
    }
    const offset = s.offset ?? 0;
    if (!integerIn(offset, 0, DPF_MAX_OFFSET)) throw bad(`atom ${i}: shift offset must be an integer in 0..${DPF_MAX_OFFSET}, got ${String(offset)}`, i);
    const mask = s.mask ?? fullMask(size);
    if (!integerIn(mask, 1, fullMask(size))) throw bad(`atom ${i}: shift mask must be a nonzero integer that fits ${size} byte(s), got ${String(mask)}`, i);
    const scale = s.scale ?? 1;
    if (!integerIn(scale, 1, 256)) throw bad(`atom ${i}: shift scale must be an integer in 1..256, got ${String(scale)}`, i);
    return { kind: 'shift', offset, size, mask, scale, add };
  }
  const c = atom as Partial<DpfCompare>;
  if (!('value' in c)) throw bad(`atom ${i} is neither a compare ({ offset, size, mask?, value }) nor a shift ({ shift: {...} })`, i);
  const size = c.size;
  if (size !== 1 && size !== 2 && size !== 4) throw bad(`atom ${i}: size must be 1, 2 or 4, got ${String(size)}`, i);
  if (!integerIn(c.offset, 0, DPF_MAX_OFFSET)) throw bad(`atom ${i}: offset must be an integer in 0..${DPF_MAX_OFFSET}, got ${String(c.offset)}`, i);
  const mask = c.mask ?? fullMask(size);
  if (!integerIn(mask, 1, fullMask(size))) throw bad(`atom ${i}: mask must be a nonzero integer that fits ${size} byte(s), got ${String(mask)}`, i);
  if (!integerIn(c.value, 0, fullMask(size))) throw bad(`atom ${i}: value must be an integer that fits ${size} byte(s), got ${String(c.value)}`, i);
  if ((c.value & ~mask) >>> 0 !== 0) throw bad(`atom ${i}: value 0x${c.value.toString(16)} has bits outside mask 0x${mask.toString(16)}, so it never matches`, i);
  return { kind: 'compare', offset: c.offset, size, mask, value: c.value };
}

/**
 * Validates a description and returns its canonical form (see the top of this file).
 * Throws EBADDESC naming the atom at fault.
 */
export function canonicalDescription(desc: unknown): CanonicalAtom[] {
  if (!Array.isArray(desc)) throw bad('a DPF description must be an array of atoms');
  if (desc.length === 0) throw bad('a DPF description needs at least one atom (packets no owner takes go to the default netio)');
  if (desc.length > DPF_MAX_ATOMS) throw bad(`a DPF description holds at most ${DPF_MAX_ATOMS} atoms, got ${desc.length}`);
  const out: CanonicalAtom[] = [];
  let segment: { c: CanonicalCompare; index: number }[] = [];
  const closeSegment = (): void => {
    segment.sort((x, y) => x.c.offset - y.c.offset || x.c.size - y.c.size || x.c.mask - y.c.mask || x.index - y.index);
    let last: { c: CanonicalCompare; index: number } | undefined;
    for (const entry of segment) {
      const c = entry.c;
      if (last && last.c.offset === c.offset && last.c.size === c.size && last.c.mask === c.mask) {
        if (last.c.value !== c.value) {
          throw bad(`atoms ${last.index} and ${entry.index} compare the field at offset ${c.offset} (size ${c.size}, mask 0x${c.mask.toString(16)}) with 0x${last.c.value.toString(16)} and 0x${c.value.toString(16)}, so the description never matches`, entry.index);
        }
        continue;
      }
      out.push(c);
      last = entry;
    }
    segment = [];
  };
  for (let i = 0; i < desc.length; i++) {
    if (!(i in desc)) throw bad(`atom ${i} is missing (a hole in the array)`, i);
    const a = canonicalAtom(desc[i], i);
    if (a.kind === 'compare') {
      segment.push({ c: a, index: i });
    } else {
      closeSegment();
      out.push(a);
    }
  }
  closeSegment();
  if (out[out.length - 1].kind === 'shift') throw bad('a DPF description may not end with a shift (it would test nothing after it)');
  return out;
}

/** A string equal for exactly the descriptions with the same canonical form. */
export function descriptionKey(atoms: readonly CanonicalAtom[]): string {
  return atoms
    .map((a) => (a.kind === 'compare' ? `c${a.offset}/${a.size}/${a.mask}=${a.value}` : `s${a.offset}/${a.size}/${a.mask}*${a.scale}+${a.add}`))
    .join(' ');
}

/** The description written back in the public form, for messages and `netpd compile`. */
export function formatDescription(atoms: readonly CanonicalAtom[]): string {
  return atoms
    .map((a) => {
      if (a.kind === 'compare') {
        const mask = a.mask === fullMask(a.size) ? '' : ` & 0x${a.mask.toString(16)}`;
        return `[${a.offset}:${a.size}]${mask} = 0x${a.value.toString(16)}`;
      }
      if (a.size === 0) return `shift +${a.add}`;
      const mask = a.mask === fullMask(a.size) ? '' : ` & 0x${a.mask.toString(16)}`;
      return `shift ([${a.offset}:${a.size}]${mask}) * ${a.scale}${a.add ? ` + ${a.add}` : ''}`;
    })
    .join(' and ');
}
