// DPF descriptions (bindings/dpf/description.ts): validation names the atom at fault,
// the canonical form orders and merges compares only where that cannot change the
// meaning, and the reference evaluator (bindings/dpf/evaluate.ts) accepts the same
// packets before and after canonicalization.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { NetpdError } from '../bindings/errors.js';
import {
  canonicalDescription, descriptionKey, formatDescription, DPF_MAX_ATOMS,
  type CanonicalAtom, type DpfAtom,
} from '../bindings/dpf/description.js';
import { matchDescription } from '../bindings/dpf/evaluate.js';
import { toDescription } from '../bindings/dpf/compile.js';

function refusal(desc: unknown): NetpdError {
  try {
    canonicalDescription(desc);
  } catch (e) {
    if (e instanceof NetpdError) return e;
    throw e;
  }
  throw new Error(`accepted ${JSON.stringify(desc)}`);
}

const ok: DpfAtom = { offset: 12, size: 2, value: 0x800 };

describe('canonicalDescription refuses malformed descriptions with EBADDESC', () => {
  // [why, bad atom, message]: each is put second, after a good atom, so details.atom is 1.
  const badAtoms: [string, unknown, RegExp][] = [
    ['an atom that is not an object', 7, /atom 1 is not an object/],
    ['a null atom', null, /atom 1 is not an object/],
    ['a shift that is not an object', { shift: 14 }, /shift must be an object/],
    ['a shift of size 3', { shift: { size: 3, offset: 0 } }, /shift size must be 0, 1, 2 or 4, got 3/],
    ['a negative shift add', { shift: { add: -1 } }, /shift add must be an integer in 0\.\.65535, got -1/],
    ['a shift add past 65535', { shift: { add: 65536 } }, /shift add must be an integer in 0\.\.65535/],
    ['a fractional shift add', { shift: { add: 1.5 } }, /shift add must be an integer/],
    ['a size-0 shift with a length field', { shift: { add: 4, offset: 14 } }, /without a length field \(size 0\) takes only add/],
    ['a size-0 shift with a scale', { shift: { add: 4, scale: 4 } }, /takes only add/],
    ['a shift by nothing', { shift: {} }, /a shift by nothing/],
    ['a shift offset past 65535', { shift: { size: 1, offset: 65536 } }, /shift offset must be an integer in 0\.\.65535/],
    ['a zero shift mask', { shift: { size: 1, offset: 14, mask: 0 } }, /shift mask must be a nonzero integer that fits 1 byte/],
    ['a shift mask wider than its field', { shift: { size: 1, offset: 14, mask: 0x100 } }, /shift mask must be a nonzero integer/],
    ['a shift scale of 0', { shift: { size: 1, offset: 14, scale: 0 } }, /shift scale must be an integer in 1\.\.256, got 0/],
    ['a shift scale of 257', { shift: { size: 1, offset: 14, scale: 257 } }, /shift scale must be an integer in 1\.\.256/],
    ['a compare without a value', { offset: 12, size: 2 }, /atom 1 is neither a compare/],
    ['a compare of size 3', { offset: 12, size: 3, value: 0 }, /size must be 1, 2 or 4, got 3/],
    ['a negative offset', { offset: -1, size: 1, value: 0 }, /offset must be an integer in 0\.\.65535, got -1/],
    ['an offset past 65535', { offset: 65536, size: 1, value: 0 }, /offset must be an integer in 0\.\.65535/],
    ['a fractional offset', { offset: 1.5, size: 1, value: 0 }, /offset must be an integer/],
    ['a zero mask', { offset: 0, size: 1, mask: 0, value: 0 }, /mask must be a nonzero integer that fits 1 byte/],
    ['a mask wider than the field', { offset: 0, size: 2, mask: 0x10000, value: 0 }, /mask must be a nonzero integer that fits 2 byte/],
    ['a value wider than the field', { offset: 0, size: 1, value: 256 }, /value must be an integer that fits 1 byte/],
    ['a negative value', { offset: 0, size: 4, value: -1 }, /value must be an integer that fits 4 byte/],
    ['a value with bits outside the mask', { offset: 0, size: 1, mask: 0x0f, value: 0x10 }, /value 0x10 has bits outside mask 0xf, so it never matches/],
  ];
  for (const [why, atom, message] of badAtoms) {
    it(`${why}: names atom 1`, () => {
      const e = refusal([ok, atom, ok]);
      expect(e.code).toBe('EBADDESC');
      expect(e.message).toMatch(message);
      expect(e.details.atom).toBe(1);
    });
  }

  const badDescriptions: [string, unknown, RegExp][] = [
    ['something other than an array', { offset: 0, size: 1, value: 0 }, /must be an array of atoms/],
    ['no atoms', [], /needs at least one atom/],
    ['more atoms than DPF_MAX_ATOMS', new Array(DPF_MAX_ATOMS + 1).fill(ok), /at most 64 atoms, got 65/],
    ['a trailing shift', [ok, { shift: { add: 14 } }], /may not end with a shift/],
  ];
  for (const [why, desc, message] of badDescriptions) {
    it(`${why}: a description-level error`, () => {
      const e = refusal(desc);
      expect(e.code).toBe('EBADDESC');
      expect(e.message).toMatch(message);
      expect(e.details.atom).toBeUndefined();
    });
  }
  it('one field equal to two values: names both atoms, details.atom the later one', () => {
    const e = refusal([ok, { offset: 23, size: 1, value: 6 }, { offset: 12, size: 2, value: 0x86dd }]);
    expect(e.code).toBe('EBADDESC');
    expect(e.message).toMatch(/atoms 0 and 2 compare the field at offset 12 \(size 2, mask 0xffff\) with 0x800 and 0x86dd/);
    expect(e.details.atom).toBe(2);
  });
  it('holes, null fields and atoms that are both a compare and a shift', () => {
    // eslint-disable-next-line no-sparse-arrays
    expect(refusal([, ok] as never).message).toMatch(/atom 0 is missing/);
    expect(refusal([{ offset: 12, size: 2, mask: null, value: 1 }] as never).message).toMatch(/mask is null/);
    expect(refusal([{ shift: { add: 14 }, value: 1 }] as never).message).toMatch(/both shift and value/);
  });
});

describe('the canonical form', () => {
  it('fills every field, sorts compares by (offset, size, mask) between shifts, and keeps shifts in place', () => {
    const atoms = canonicalDescription([
      { offset: 23, size: 1, value: 6 },
      { offset: 12, size: 2, value: 0x800 },
      { offset: 20, size: 2, mask: 0x1fff, value: 0 },
      { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } },
      { offset: 16, size: 2, value: 80 },
      { offset: 14, size: 2, value: 1234 },
    ]);
    expect(atoms).toEqual([
      { kind: 'compare', offset: 12, size: 2, mask: 0xffff, value: 0x800 },
      { kind: 'compare', offset: 20, size: 2, mask: 0x1fff, value: 0 },
      { kind: 'compare', offset: 23, size: 1, mask: 0xff, value: 6 },
      { kind: 'shift', offset: 14, size: 1, mask: 0x0f, scale: 4, add: 0 },
      { kind: 'compare', offset: 14, size: 2, mask: 0xffff, value: 1234 },
      { kind: 'compare', offset: 16, size: 2, mask: 0xffff, value: 80 },
    ]);
  });

  it('writes a size-0 shift as add only, and a full mask as the default', () => {
    expect(canonicalDescription([{ shift: { add: 14 } }, { offset: 0, size: 1, mask: 0xff, value: 0x45 }])).toEqual([
      { kind: 'shift', offset: 0, size: 0, mask: 0, scale: 0, add: 14 },
      { kind: 'compare', offset: 0, size: 1, mask: 0xff, value: 0x45 },
    ]);
  });

  it('compares a field twice only once, but never moves a compare across a shift', () => {
    const hop = { shift: { add: 4 } };
    expect(canonicalDescription([ok, { offset: 12, size: 2, mask: 0xffff, value: 0x800 }])).toHaveLength(1);
    expect(canonicalDescription([ok, hop, ok])).toHaveLength(3);
    // The same field with two values on both sides of a shift is two fields: no contradiction.
    expect(canonicalDescription([ok, hop, { offset: 12, size: 2, value: 0x86dd }])).toHaveLength(3);
  });

  it('gives equal keys exactly to descriptions with the same canonical form', () => {
    const a = descriptionKey(canonicalDescription([{ offset: 23, size: 1, value: 6 }, ok]));
    const b = descriptionKey(canonicalDescription([ok, { offset: 23, size: 1, mask: 0xff, value: 6 }, ok]));
    const c = descriptionKey(canonicalDescription([ok, { offset: 23, size: 1, value: 17 }]));
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('is formatted back in the pcap-filter-like notation', () => {
    const atoms = canonicalDescription([
      ok, { offset: 20, size: 2, mask: 0x1fff, value: 0 },
      { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } }, { offset: 16, size: 2, value: 53 },
      { shift: { offset: 1, size: 1, scale: 8, add: 8 } }, { shift: { add: 2 } }, { offset: 0, size: 1, value: 1 },
    ]);
    expect(formatDescription(atoms)).toBe(
      '[12:2] = 0x800 and [20:2] & 0x1fff = 0x0 and shift ([14:1] & 0xf) * 4 and [16:2] = 0x35' +
      ' and shift ([1:1]) * 8 + 8 and shift +2 and [0:1] = 0x1',
    );
  });

  it('round-trips through toDescription', () => {
    const atoms = canonicalDescription([ok, { shift: { add: 2 } }, { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } }, { offset: 2, size: 2, value: 53 }]);
    expect(canonicalDescription(toDescription(atoms))).toEqual(atoms);
  });
});

describe('matchDescription (the reference evaluator)', () => {
  const frame = Uint8Array.from([
    ...new Array(12).fill(0xaa), 0x08, 0x00, // Ethernet, IPv4
    0x46, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0, // IHL 6: 4 bytes of options
    0x04, 0xd2, 0x00, 0x35, // UDP 1234 → 53
  ]);
  const udpTo53 = canonicalDescription([ok, { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } }, { offset: 16, size: 2, value: 53 }]);

  it('reads a compare after a shift at base + offset', () => {
    expect(matchDescription(udpTo53, frame)).toBe(true);
    expect(matchDescription(canonicalDescription([{ shift: { add: 12 } }, { offset: 0, size: 2, value: 0x800 }]), frame)).toBe(true);
  });

  it('fails a compare or a shift that would read past the captured bytes', () => {
    expect(matchDescription(udpTo53, frame.subarray(0, frame.length - 1))).toBe(false);
    expect(matchDescription(udpTo53, frame.subarray(0, frame.length - 2))).toBe(false);
    // The shift reads byte 14 (IHL 6), so the compare reads byte 24: the first option byte.
    const firstOption = canonicalDescription([{ shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } }, { offset: 0, size: 1, value: 0 }]);
    expect(matchDescription(firstOption, frame.subarray(0, 25))).toBe(true);
    expect(matchDescription(firstOption, frame.subarray(0, 24))).toBe(false);
    expect(matchDescription(firstOption, frame.subarray(0, 14))).toBe(false);
    expect(matchDescription(canonicalDescription([ok]), new Uint8Array(0))).toBe(false);
  });

  it('masks 32-bit fields without sign trouble', () => {
    const top = canonicalDescription([{ offset: 0, size: 4, mask: 0x80000000, value: 0x80000000 }]);
    expect(matchDescription(top, Uint8Array.from([0x80, 0, 0, 0]))).toBe(true);
    expect(matchDescription(top, Uint8Array.from([0x7f, 0xff, 0xff, 0xff]))).toBe(false);
  });
});

// ---- canonicalization keeps the meaning -------------------------------------------------

/** An atom with its defaults filled in, in place: the description as written, unsorted. */
function literal(a: DpfAtom): CanonicalAtom {
  if ('shift' in a) {
    const s = a.shift;
    const size = s.size ?? 0;
    if (size === 0) return { kind: 'shift', offset: 0, size: 0, mask: 0, scale: 0, add: s.add ?? 0 };
    return { kind: 'shift', offset: s.offset ?? 0, size, mask: s.mask ?? (size === 4 ? 0xffffffff : 2 ** (8 * size) - 1), scale: s.scale ?? 1, add: s.add ?? 0 };
  }
  return { kind: 'compare', offset: a.offset, size: a.size, mask: a.mask ?? (a.size === 4 ? 0xffffffff : 2 ** (8 * a.size) - 1), value: a.value };
}

// Descriptions drawn from a template packet: each compare's value is the template's
// masked field, or (one time in eight) its complement in the mask, so that they match the template, its
// mutations and its truncations often, and contradict each other sometimes.
const small = fc.constantFrom(0x0f, 0x01, 0x80, 0xf0);
const arbitraryCase = fc.record({
  template: fc.uint8Array({ minLength: 4, maxLength: 24 }),
  steps: fc.array(fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('compare' as const), offset: fc.nat(10), size: fc.constantFrom(1 as const, 2 as const, 4 as const), narrow: fc.option(small), flip: fc.nat(7) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('shift' as const), offset: fc.nat(6), scale: fc.integer({ min: 1, max: 4 }), add: fc.nat(3) }) },
  ), { minLength: 1, maxLength: 10 }),
  mutations: fc.array(fc.record({ at: fc.nat(23), byte: fc.nat(255) }), { maxLength: 3 }),
});

// The bytes the template has at [at, at + size), big-endian, 0 past its end.
const fieldOf = (bytes: Uint8Array, at: number, size: number): number => {
  let v = 0;
  for (let i = 0; i < size; i++) v = v * 256 + (bytes[at + i] ?? 0);
  return v;
};

describe('canonicalization does not change what a description accepts', () => {
  it('on random descriptions over random packets, their mutations and truncations', () => {
    let matched = 0;
    let contradictions = 0;
    fc.assert(fc.property(arbitraryCase, ({ template, steps, mutations }) => {
      const desc: DpfAtom[] = [];
      let base = 0;
      for (const s of steps) {
        if (s.kind === 'shift') {
          desc.push({ shift: { offset: s.offset, size: 1, mask: 0x03, scale: s.scale, add: s.add } });
          base += (fieldOf(template, base + s.offset, 1) & 0x03) * s.scale + s.add;
          continue;
        }
        const full = s.size === 4 ? 0xffffffff : 2 ** (8 * s.size) - 1;
        const mask = s.narrow === null ? full : s.narrow;
        const value = ((fieldOf(template, base + s.offset, s.size) ^ (s.flip === 0 ? mask : 0)) & mask) >>> 0;
        desc.push(s.narrow === null ? { offset: s.offset, size: s.size, value } : { offset: s.offset, size: s.size, mask, value });
      }
      const packets = [template, template.subarray(0, template.length >> 1), template.subarray(0, template.length - 1)];
      const mutated = template.slice();
      for (const m of mutations) if (m.at < mutated.length) mutated[m.at] = m.byte;
      packets.push(mutated);
      const asWritten = desc.map(literal);
      let canonical: CanonicalAtom[] | undefined;
      try {
        canonical = canonicalDescription(desc);
      } catch (e) {
        // Only the refusals that say "never matches" may happen here, and they must be right.
        if (!(e instanceof NetpdError) || !/never matches|may not end with a shift/.test(e.message)) throw e;
        if (/never matches/.test(e.message)) {
          contradictions++;
          for (const p of packets) expect(matchDescription(asWritten, p)).toBe(false);
        }
        return;
      }
      for (const p of packets) {
        const m = matchDescription(asWritten, p);
        expect(matchDescription(canonical, p)).toBe(m);
        if (m) matched++;
      }
    }), { numRuns: 3000, seed: 7 });
    // The property is only worth something if matches, and contradictions, are common.
    expect(matched).toBeGreaterThan(1000);
    expect(contradictions).toBeGreaterThan(10);
  });
});
