// The DPF JIT is the core's trie walk, compiled: for random description sets (shared
// prefixes, loaded and constant shifts, overlapping lengths and ties), descriptions
// taken from real captures, and wide and deep shape trees, the compiled module writes
// exactly what dpf_classify_burst writes, for every packet at every captured length
// tried, runts and bytes left past the captured length included. Owners added and
// removed under existing groups reach the same compiled module without a new one.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { Arena } from '../bindings/arena.js';
import { NetpdError } from '../bindings/errors.js';
import { PcapReader } from '../bindings/pcap/index.js';
import { canonicalDescription, descriptionKey, type CanonicalAtom, type DpfAtom } from '../bindings/dpf/description.js';
import { matchDescription } from '../bindings/dpf/evaluate.js';
import { DpfTrie, DPF_NONE } from '../bindings/dpf/trie.js';
import { arenaMemoryLimits, burstLayout } from '../bindings/jit/burst.js';
import { compileDpfModule, compileDpfModuleAsync, dpfModuleBytes, instantiateDpfModule, type DpfModuleExports } from '../bindings/jit/dpf-jit.js';
import { loadCapture } from './support/captures.js';
import { ether } from './support/frames.js';

function compile(trie: DpfTrie): DpfModuleExports {
  const { arena } = trie;
  return instantiateDpfModule(compileDpfModule(trie, burstLayout(arena), arenaMemoryLimits(arena)), arena.memory);
}

/** Result vectors for one arena: the core's and the JIT's. */
interface Outputs { core: Uint32Array; jit: Uint32Array }

function outputs(arena: Arena, n: number): Outputs {
  return { core: arena.burstVector(n), jit: arena.burstVector(n) };
}

/**
 * Classifies vec[0..n) with the core (dpf_classify_burst, and dpf_match per slot) and
 * the compiled module (classify, and match per slot); returns a description of the
 * first disagreement, or undefined.
 */
function disagreement(trie: DpfTrie, jit: DpfModuleExports, vec: Uint32Array, n: number, out: Outputs): string | undefined {
  const { arena } = trie;
  const coreMatched = trie.classifyBurst(vec, n, out.core);
  const jitMatched = jit.classify(vec.byteOffset, n, out.jit.byteOffset);
  for (let i = 0; i < n; i++) {
    const slot = vec[i];
    const coreOne = trie.classify(slot);
    const jitOne = jit.match(arena.dataOffset(slot), arena.capLen(slot)) >>> 0;
    if (out.jit[i] !== out.core[i] || jitOne !== out.core[i] || coreOne !== out.core[i]) {
      const bytes = arena.bytes.subarray(arena.dataOffset(slot), arena.dataOffset(slot) + Math.min(arena.capLen(slot), 64));
      return `packet ${i} (capLen ${arena.capLen(slot)}, [${Array.from(bytes).join(',')}]): ` +
        `core burst ${out.core[i]}, core match ${coreOne}, jit classify ${out.jit[i]}, jit match ${jitOne}`;
    }
  }
  return coreMatched === jitMatched ? undefined : `matched: core ${coreMatched}, jit ${jitMatched}`;
}

/**
 * Runs `disagreement` with every slot cut to each captured length of `lengths` (a slot
 * keeps its whole bytes, so a read past capLen would find real data), then restores
 * the lengths. -1 stands for each slot's own length.
 */
function disagreementAtLengths(trie: DpfTrie, jit: DpfModuleExports, vec: Uint32Array, n: number, out: Outputs, lengths: readonly number[]): string | undefined {
  const { arena } = trie;
  const whole = Array.from(vec.subarray(0, n), (s) => arena.capLen(s));
  const wire = Array.from(vec.subarray(0, n), (s) => arena.wireLen(s));
  try {
    for (const len of lengths) {
      for (let i = 0; i < n; i++) arena.setPacket(vec[i], len < 0 ? whole[i] : Math.min(len, whole[i]), wire[i], 0, 0, 0);
      const d = disagreement(trie, jit, vec, n, out);
      if (d) return `at capLen ${len < 0 ? 'whole' : len}: ${d}`;
    }
    return undefined;
  } finally {
    for (let i = 0; i < n; i++) arena.setPacket(vec[i], whole[i], wire[i], 0, 0, 0);
  }
}

/** Puts each packet's bytes in a fresh slot with the given captured length. */
function store(arena: Arena, packets: readonly { bytes: Uint8Array; capLen: number }[]): Uint32Array {
  const vec = arena.burstVector(Math.max(packets.length, 1));
  expect(arena.allocBurst(vec, packets.length)).toBe(packets.length);
  packets.forEach(({ bytes, capLen }, i) => {
    arena.bytes.set(bytes, arena.dataOffset(vec[i]));
    arena.setPacket(vec[i], capLen, bytes.length, 0, 0, 0);
  });
  return vec;
}

const every = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// ---- random description sets -----------------------------------------------------------------

// Packet bytes come from a small alphabet, mostly zeros, so that random atoms match
// often: 0x45 is an IPv4 version/IHL byte (a 20-byte shift under mask 0x0f, scale 4),
// 0x0f the largest IHL (a shift past every packet here), 0 and 1 keep other shifts short.
const alphabetByte = fc.constantFrom(0, 0, 0, 0, 1, 0x45, 0x45, 0x0f);
// Compared values lean further to zero.
const valueByte = fc.constantFrom(0, 0, 0, 0, 0, 0, 1, 0x45);
const fullMask = (size: number): number => (size === 4 ? 0xffffffff : 2 ** (size * 8) - 1);

const compare: fc.Arbitrary<DpfAtom> = fc
  .record({ offset: fc.nat(9), size: fc.constantFrom<1 | 2 | 4>(1, 1, 1, 2, 2, 4), word: fc.array(valueByte, { minLength: 4, maxLength: 4 }), mask: fc.constantFrom(-1, 0x0f0f0f0f, 0x01000100, 0xf0) })
  .map(({ offset, size, word, mask }) => {
    const m = mask === -1 ? fullMask(size) : (mask & fullMask(size)) >>> 0 || fullMask(size);
    const value = word.slice(0, size).reduce<number>((v, b) => v * 256 + b, 0);
    return { offset, size, mask: m, value: (value & m) >>> 0 };
  });

const shift: fc.Arbitrary<DpfAtom> = fc.oneof(
  // IPv4's header length: 0x45 moves 20 bytes, 0x0f moves 60 (past every packet here).
  fc.nat(6).map((offset) => ({ shift: { offset, size: 1 as const, mask: 0x0f, scale: 4 } })),
  fc.integer({ min: 1, max: 6 }).map((add) => ({ shift: { add } })),
  fc.record({ offset: fc.nat(4), scale: fc.integer({ min: 1, max: 3 }), add: fc.nat(2) })
    .map(({ offset, scale, add }) => ({ shift: { offset, size: 2 as const, mask: 0x0003, scale, add } })),
  // A scaled 4-byte length: its product needs 64 bits, and only a zero field stays in the packet.
  fc.record({ offset: fc.nat(4), add: fc.nat(3) }).map(({ offset, add }) => ({ shift: { offset, size: 4 as const, scale: 256, add } })),
);

const atom = fc.oneof({ arbitrary: compare, weight: 5 }, { arbitrary: shift, weight: 2 });

/**
 * Each description extends a prefix of an earlier one, so paths are shared and lengths
 * overlap; one-atom tails make siblings of equal length, whose ties the field ids decide.
 */
const descriptionSet = fc
  .array(fc.tuple(fc.nat(), fc.nat(), fc.oneof(fc.tuple(atom), fc.array(atom, { minLength: 1, maxLength: 5 }))), { minLength: 6, maxLength: 40 })
  .map((grows) => {
    const made: DpfAtom[][] = [];
    for (const [from, cut, tail] of grows) {
      const prefix = made.length === 0 ? [] : made[from % made.length];
      made.push([...prefix.slice(0, cut % (prefix.length + 1)), ...tail]);
    }
    return made.flatMap((d) => {
      try {
        return [canonicalDescription(d)];
      } catch (e) {
        if (e instanceof NetpdError && e.code === 'EBADDESC') return [];
        throw e;
      }
    });
  });

const packet = fc.array(alphabetByte, { minLength: 48, maxLength: 48 }).map((b) => Uint8Array.from(b));

/** Inserts the description unless an equal one is registered; returns whether it was inserted. */
function tryInsert(trie: DpfTrie, atoms: readonly CanonicalAtom[], owner: number): boolean {
  try {
    trie.insert(atoms, owner);
    return true;
  } catch (e) {
    if (e instanceof NetpdError && e.code === 'EDUPDESC') return false;
    throw e;
  }
}

/** Registers each distinct description (owner = its index); returns the registered ones. */
function register(trie: DpfTrie, descs: readonly CanonicalAtom[][]): CanonicalAtom[][] {
  return descs.filter((atoms, owner) => tryInsert(trie, atoms, owner));
}

describe('DPF JIT ≡ core', () => {
  it('writes what dpf_classify_burst writes for random description sets on random packets and runts', () => {
    const seen = { packets: 0, matched: 0, tied: 0, shadowed: 0, throughShift: 0 };
    fc.assert(
      fc.property(descriptionSet, fc.array(packet, { minLength: 8, maxLength: 32 }), (descs, pkts) => {
        const arena = Arena.create({ slotSize: 64, slotCount: 64, controlBytes: 1 << 20 });
        const trie = DpfTrie.create(arena, { maxNodes: 1024, maxFields: 256 });
        const registered = register(trie, descs);
        const jit = compile(trie);
        const vec = store(arena, pkts.map((bytes) => ({ bytes, capLen: bytes.length })));
        expect(disagreementAtLengths(trie, jit, vec, pkts.length, outputs(arena, pkts.length), every(0, 48))).toBeUndefined();
        // How often the cases the tie rule and "deepest wins" decide come up (whole packets).
        for (const bytes of pkts) {
          const matching = registered.filter((d) => matchDescription(d, bytes));
          const lengths = matching.map((d) => d.length);
          seen.packets++;
          if (lengths.length === 0) continue;
          seen.matched++;
          if (matching.some((d) => d.some((a) => a.kind === 'shift'))) seen.throughShift++;
          const deepest = Math.max(...lengths);
          if (lengths.filter((l) => l === deepest).length > 1) seen.tied++;
          if (lengths.some((l) => l < deepest)) seen.shadowed++;
        }
      }),
      { numRuns: 160 },
    );
    expect(seen.matched).toBeGreaterThan(seen.packets / 4);
    expect(seen.tied).toBeGreaterThan(200);
    expect(seen.shadowed).toBeGreaterThan(200);
    expect(seen.throughShift).toBeGreaterThan(200);
  });

  it('takes the deepest terminal even when a shallower one is found first, and the first found among equals', () => {
    const arena = Arena.create({ slotSize: 128, slotCount: 8, controlBytes: 1 << 20 });
    const trie = DpfTrie.create(arena, { maxNodes: 64 });
    const ipv4 = { offset: 12, size: 2, value: 0x0800 } as const;
    // Field ids are interned in insertion order, so [14:1] < [23:1] < [22:1].
    trie.insert(canonicalDescription([ipv4, { offset: 14, size: 1, value: 0x45 }]), 1);
    trie.insert(canonicalDescription([ipv4, { offset: 23, size: 1, value: 6 }, { offset: 26, size: 4, value: 0x0a000001 }]), 2);
    trie.insert(canonicalDescription([ipv4, { offset: 22, size: 1, value: 64 }, { offset: 26, size: 4, value: 0x0a000001 }]), 3);
    trie.insert(canonicalDescription([ipv4, { offset: 14, size: 1, value: 0x45 }, { shift: { add: 14 } }, { offset: 9, size: 1, value: 17 }]), 4);
    const jit = compile(trie);
    const frame = (proto: number, ttl: number): Uint8Array => ether(0x0800, [0x45, 0, 0, 40, 0, 0, 0, 0, ttl, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, ...new Array(20).fill(0)]);
    // TCP: 1 (depth 2) is found first, then 2 and 3 (depth 3), 2 before 3 as [23:1] < [22:1].
    // UDP: 4 (depth 4) beats 1 and 3.
    const pkts = [frame(6, 64), frame(6, 1), frame(17, 64), frame(17, 1)];
    const vec = store(arena, pkts.map((bytes) => ({ bytes, capLen: bytes.length })));
    const results = arena.burstVector(4);
    expect(jit.classify(vec.byteOffset, 4, results.byteOffset)).toBe(4);
    expect(Array.from(results)).toEqual([2, 2, 4, 4]);
    expect(disagreementAtLengths(trie, jit, vec, 4, outputs(arena, 4), [...every(0, 40), -1])).toBeUndefined();
  });

  it('refuses a burst layout that is not u32 addresses, or whose metadata lies past 4 GiB (EINVAL)', () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 8, controlBytes: 1 << 20 });
    const trie = DpfTrie.create(arena, { maxNodes: 64 });
    trie.insert(canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }]), 1);
    const layout = burstLayout(arena);
    const limits = arenaMemoryLimits(arena);
    expect(() => dpfModuleBytes(trie, { ...layout, data: -1 }, limits)).toThrow(/EINVAL: burst layout field data/);
    expect(() => dpfModuleBytes(trie, { ...layout, meta: 0xfffffff0, capLen: 16 }, limits)).toThrow(/EINVAL: burst layout: slot metadata lies past 4 GiB/);
  });

  it('ends a branch at a shift whose scaled length passes capLen, however large (no 32-bit wrap)', () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 8, controlBytes: 1 << 20 });
    const trie = DpfTrie.create(arena, { maxNodes: 64 });
    // 0x01000000 * 256 and 0x80000000 * 2 are 2^32: wrapped to 32 bits they would move the base by 0.
    trie.insert(canonicalDescription([{ shift: { offset: 0, size: 4, scale: 256 } }, { offset: 0, size: 1, value: 1 }]), 1);
    trie.insert(canonicalDescription([{ shift: { offset: 0, size: 4, scale: 2, add: 4 } }, { offset: 0, size: 1, value: 0x80 }]), 2);
    const jit = compile(trie);
    const pkts = [[1, 0, 0, 0], [0x80, 0, 0, 0, 0x80], [0, 0, 0, 0], [0, 0, 0, 2, 0x80, 0, 0, 0, 0x80]].map((b) => ({ bytes: Uint8Array.from([...b, ...new Array(60 - b.length).fill(0)]), capLen: 60 }));
    const vec = store(arena, pkts);
    const results = arena.burstVector(pkts.length);
    jit.classify(vec.byteOffset, pkts.length, results.byteOffset);
    expect(Array.from(results)).toEqual([DPF_NONE, DPF_NONE, DPF_NONE, 2]);
    expect(disagreementAtLengths(trie, jit, vec, pkts.length, outputs(arena, pkts.length), every(0, 60))).toBeUndefined();
  });

  it('writes what dpf_classify_burst writes for descriptions taken from real captures, at every captured length up to 128', () => {
    const arena = Arena.create({ slotSize: 4096, slotCount: 8192, controlBytes: 16 << 20 });
    const names = ['scapy-ipv4.pcap', 'scapy-ipv6.pcap', 'scapy-l2.pcap', 'scapy-runts.pcap', 'scapy-snaplen.pcap', 'scapy-mutated.pcap', 'scapy-filter.pcap', 'veth-ping.pcap', 'veth-snap64.pcap', 'veth-sockets.pcap'];
    const slots: number[] = [];
    for (const name of names) {
      const { vec, n } = loadCapture(arena, name, 1024);
      slots.push(...vec.subarray(0, n));
    }
    const reader = PcapReader.open(fileURLToPath(new URL('../samples/sample.pcap', import.meta.url)), { arena });
    const sample = arena.burstVector(4096);
    slots.push(...sample.subarray(0, reader.readBurst(sample, 4096)));
    reader.close();
    const vec = arena.burstVector(slots.length);
    vec.set(slots);

    // Templates of atoms; each compare's value is read from a packet, so many match.
    const ihl = { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } } as const;
    const c = (offset: number, size: 1 | 2 | 4, mask?: number): DpfAtom => ({ offset, size, mask, value: -1 });
    const templates: DpfAtom[][] = [
      [c(12, 2)],
      [c(12, 2), c(23, 1)],
      [c(12, 2), c(22, 1)],
      [c(12, 2), c(23, 1), c(26, 4), c(30, 4)],
      [c(12, 2), c(23, 1), c(20, 2, 0x1fff), ihl, c(16, 2)],
      [c(12, 2), c(23, 1), c(20, 2, 0x1fff), c(26, 4), c(30, 4), ihl, c(14, 2), c(16, 2)],
      [c(12, 2), c(23, 1), ihl, { shift: { add: 8 } }, c(0, 1), c(2, 2)],
      [c(12, 2), c(14, 1, 0xf0), c(20, 1)],
      [c(12, 2), c(20, 1), { shift: { add: 54 } }, c(2, 2)],
      [{ shift: { add: 14 } }, c(0, 1, 0xf0), c(9, 1)],
      [c(0, 4, 0x01000000), c(12, 2)],
      [c(12, 2), { shift: { offset: 16, size: 2, mask: 0xffff, scale: 1 } }, c(0, 1)],
      [c(12, 2), { shift: { offset: 26, size: 4, mask: 0xffffffff, scale: 256 } }, c(0, 1)],
    ];
    const trie = DpfTrie.create(arena, { maxNodes: 16384, maxFields: 128 });
    const keys = new Set<string>();
    for (let i = 0; keys.size < 500 && i < 50_000; i++) {
      const slot = slots[(i * 7919) % slots.length];
      const bytes = arena.bytes.subarray(arena.dataOffset(slot), arena.dataOffset(slot) + arena.capLen(slot));
      // A template that does not fit the packet is still registered, with zeros.
      const template = templates[i % templates.length];
      const atoms = canonicalDescription(fillFrom(template, bytes) ?? template.map((a) => ('shift' in a ? a : { ...a, value: 0 })));
      const key = descriptionKey(atoms);
      if (keys.has(key)) continue;
      keys.add(key);
      trie.insert(atoms, keys.size);
    }
    expect(keys.size).toBe(500);
    const jit = compile(trie);
    const out = outputs(arena, slots.length);
    expect(disagreementAtLengths(trie, jit, vec, slots.length, out, [...every(0, 128), -1])).toBeUndefined();
    expect(jit.classify(vec.byteOffset, slots.length, out.jit.byteOffset)).toBeGreaterThan(slots.length / 2);
  });

  it('splits wide and deep shape trees into functions and keeps the module linear in the shape nodes', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 512, controlBytes: 8 << 20 });
    const trie = DpfTrie.create(arena, { maxNodes: 16384, maxFields: 4096 });
    const ipv4 = { offset: 12, size: 2, value: 0x0800 } as const;
    let owner = 0;
    // Wide: 1,500 fields under one node, two values each.
    for (let k = 0; k < 1500; k++) for (const value of [0, 1]) trie.insert(canonicalDescription([ipv4, { offset: 14 + k, size: 1, value }]), owner++);
    // Deep: 16 chains of 64 atoms through loaded and constant shifts, each sharing half of
    // the one before, with terminals along the way (their prefixes of 20 atoms and more).
    const random = prng(7);
    let chain: DpfAtom[] = [];
    for (let j = 0; j < 16; j++) {
      chain = chain.slice(0, 32);
      while (chain.length < 64) {
        const at = chain.length;
        chain.push(at % 9 === 4 ? { shift: { offset: 0, size: 1, mask: 0x01, scale: 2, add: 1 } }
          : at % 13 === 7 ? { shift: { add: 2 } }
          : { offset: Math.floor(random() * 40), size: 1, mask: 0x01, value: 0 });
      }
      for (let len = 20; len <= 64; len++) {
        if (!('shift' in chain[len - 1]) && tryInsert(trie, canonicalDescription(chain.slice(0, len)), owner)) owner++;
      }
    }
    const { shapes } = trie.stats;
    expect(shapes).toBeGreaterThan(4 * 256);
    const bytes = dpfModuleBytes(trie, burstLayout(arena), arenaMemoryLimits(arena));
    expect(bytes.length / shapes).toBeLessThan(200);
    const jit = instantiateDpfModule(await compileDpfModuleAsync(trie, burstLayout(arena), arenaMemoryLimits(arena)), arena.memory);
    // Bytes 0 and 1 (mostly 0, so that some deep chains match), after an IPv4 ethertype.
    const pkts = Array.from({ length: 400 }, () => {
      const b = Uint8Array.from({ length: 1600 }, () => (random() < 0.97 ? 0 : 1));
      b[12] = 8;
      b[13] = 0;
      return { bytes: b, capLen: b.length };
    });
    const vec = store(arena, pkts);
    expect(disagreementAtLengths(trie, jit, vec, pkts.length, outputs(arena, pkts.length), [...every(0, 120), 268, 269, 270, 700, 1513, 1514, -1])).toBeUndefined();
  });
});

/** The template's atoms with each compare's value read from `bytes`, or null when a load or shift passes the end. */
function fillFrom(template: readonly DpfAtom[], bytes: Uint8Array): DpfAtom[] | null {
  let base = 0;
  const read = (at: number, size: number): number | null => (at + size > bytes.length ? null : bytes.subarray(at, at + size).reduce((v, b) => v * 256 + b, 0));
  const out: DpfAtom[] = [];
  for (const a of template) {
    if ('shift' in a) {
      const { offset = 0, size = 0, mask = 0, scale = 1, add = 0 } = a.shift;
      const v = size === 0 ? 0 : read(base + offset, size);
      if (v === null) return null;
      base += ((v & mask) >>> 0) * scale + add;
      if (base > bytes.length) return null;
      out.push(a);
    } else {
      const mask = a.mask ?? fullMask(a.size);
      const v = read(base + a.offset, a.size);
      if (v === null) return null;
      out.push({ ...a, mask, value: (v & mask) >>> 0 });
    }
  }
  return out;
}

/** A small seeded generator, so fixed packet sets are the same on every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

// ---- 5-tuple flows ---------------------------------------------------------------------------

interface Flow { src: number; dst: number; sport: number; dport: number; ihl: number }

/** Distinct flows (src carries the index), with IPv4 header lengths 20 to 28 bytes. */
function makeFlows(n: number): Flow[] {
  const random = prng(0x9e37);
  return Array.from({ length: n }, (_, i) => ({
    src: (0x0a000000 + i) >>> 0,
    dst: (0xc0a80000 | Math.floor(random() * 0x10000)) >>> 0,
    sport: 1024 + Math.floor(random() * 60000),
    dport: [80, 443, 22, 53][i & 3],
    ihl: 5 + (i % 3),
  }));
}

const u16 = (v: number): number[] => [v >>> 8, v & 0xff];
const u32 = (v: number): number[] => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

/** Ethernet, IPv4 with (ihl - 5) words of NOP options, TCP: the flow's first segment. */
function flowFrame(f: Flow): Uint8Array {
  const options = new Array((f.ihl - 5) * 4).fill(1);
  const tcp = [...u16(f.sport), ...u16(f.dport), ...u32(1), ...u32(0), 0x50, 0x02, ...u16(8192), 0, 0, 0, 0];
  return ether(0x0800, [0x40 | f.ihl, 0, ...u16(f.ihl * 4 + 20), 0, 1, 0x40, 0, 64, 6, 0, 0, ...u32(f.src), ...u32(f.dst), ...options, ...tcp]);
}

/** IPv4, TCP, not a fragment, the addresses, then past the header: the ports. */
function flowDescription(f: Flow): CanonicalAtom[] {
  return canonicalDescription([
    { offset: 12, size: 2, value: 0x0800 }, { offset: 23, size: 1, value: 6 }, { offset: 20, size: 2, mask: 0x1fff, value: 0 },
    { offset: 26, size: 4, value: f.src }, { offset: 30, size: 4, value: f.dst },
    { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } }, { offset: 14, size: 2, value: f.sport }, { offset: 16, size: 2, value: f.dport },
  ]);
}

describe('DPF JIT and data-only changes', () => {
  it('follows 5-tuple owners added and removed under the existing groups without a new module', () => {
    const arena = Arena.create({ slotSize: 128, slotCount: 4096, controlBytes: 8 << 20 });
    const trie = DpfTrie.create(arena, { maxNodes: 20_000, maxFields: 64 });
    const web = canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }, { offset: 23, size: 1, value: 6 }, { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } }, { offset: 16, size: 2, value: 80 }]);
    const WEB = 1_000_000;
    trie.insert(web, WEB);
    const all = makeFlows(1200);
    const owner = new Map<Flow, number>();
    for (const f of all.slice(0, 1000)) {
      trie.insert(flowDescription(f), owner.size);
      owner.set(f, owner.size);
    }
    const version = trie.structureVersion;
    const jit = compile(trie);
    const vec = store(arena, all.map((f) => {
      const bytes = flowFrame(f);
      return { bytes, capLen: bytes.length };
    }));
    const out = outputs(arena, all.length);
    const lengths = [-1, 0, 14, 33, 34, 37, 38, 41, 42, 45, 46, 49, 50];
    const expectOwners = (): void => {
      expect(jit.classify(vec.byteOffset, all.length, out.jit.byteOffset)).toBe(all.filter((f) => owner.has(f) || f.dport === 80).length);
      all.forEach((f, i) => {
        const want = owner.get(f) ?? (f.dport === 80 ? WEB : DPF_NONE);
        if (out.jit[i] !== want) throw new Error(`flow ${i} went to ${out.jit[i]}, not ${want}`);
      });
      expect(disagreementAtLengths(trie, jit, vec, all.length, out, lengths)).toBeUndefined();
    };
    expectOwners();

    // Remove 300 flows, add the 200 never registered, re-add 50 removed ones as new owners.
    for (const f of all.slice(0, 300)) {
      expect(trie.remove(flowDescription(f))).toBe(true);
      owner.delete(f);
    }
    for (const f of [...all.slice(1000), ...all.slice(0, 50)]) {
      const o = 5000 + owner.size;
      trie.insert(flowDescription(f), o);
      owner.set(f, o);
    }
    expect(trie.structureVersion).toBe(version);
    expectOwners();
    // Every kind of change was seen: new owners, flows left to the port-80 owner, flows left to no one.
    expect(all.slice(1000).every((f) => owner.has(f))).toBe(true);
    const orphans = all.slice(50, 300);
    expect(orphans.some((f) => f.dport === 80) && orphans.some((f) => f.dport !== 80)).toBe(true);

    // A new field under a shape node changes the structure: the module must be made again.
    trie.insert(canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }, { offset: 22, size: 1, value: 64 }]), 7_000_000);
    expect(trie.structureVersion).not.toBe(version);
    expect(disagreementAtLengths(trie, compile(trie), vec, all.length, out, lengths)).toBeUndefined();
  });

  it('routes each of 100,000 5-tuple flows to its owner', () => {
    const N = 100_000;
    const arena = Arena.create({ slotSize: 128, slotCount: N, controlBytes: 40 << 20 });
    const trie = DpfTrie.create(arena, { maxNodes: 5 * N + 64, maxFields: 64 });
    const fs = makeFlows(N);
    fs.forEach((f, i) => trie.insert(flowDescription(f), i));
    expect(trie.stats.shapes).toBe(9);
    const jit = compile(trie);
    const vec = store(arena, fs.map((f) => {
      const bytes = flowFrame(f);
      return { bytes, capLen: bytes.length };
    }));
    const out = outputs(arena, N);
    expect(jit.classify(vec.byteOffset, N, out.jit.byteOffset)).toBe(N);
    for (let i = 0; i < N; i++) if (out.jit[i] !== i) throw new Error(`flow ${i} went to ${out.jit[i]}`);
    expect(disagreement(trie, jit, vec, N, out)).toBeUndefined();
  });
});
