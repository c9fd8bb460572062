// The DPF merged trie (assembly/dpf.ts, bindings/dpf/trie.ts) against a plain reference:
// every registered description is evaluated on its own over the packet, and the longest
// one that matches wins; among equal lengths, the one whose sequence of field ids is
// smallest (the order the trie's depth-first walk finds them in).
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { Arena } from '../bindings/arena.js';
import { NetpdError } from '../bindings/errors.js';
import { PcapReader } from '../bindings/pcap/index.js';
import { canonicalDescription, descriptionKey, type CanonicalAtom, type DpfAtom } from '../bindings/dpf/description.js';
import { matchDescription } from '../bindings/dpf/evaluate.js';
import { DpfTrie, DPF_NONE, dpfHash, encodeAtom } from '../bindings/dpf/trie.js';
import { loadCapture } from './support/captures.js';

// ---- the reference --------------------------------------------------------------------

function loadBE(bytes: Uint8Array, at: number, size: number): number {
  let v = 0;
  for (let i = 0; i < size; i++) v = v * 256 + bytes[at + i];
  return v;
}

/** How often the reference saw a match, and a tie between equally long matches. */
const seen = { packets: 0, matched: 0, ties: 0 };

interface Registered { atoms: CanonicalAtom[]; owner: number }

/** The owner the trie must pick for the packet, or DPF_NONE. */
function referenceOwner(trie: DpfTrie, registered: readonly Registered[], bytes: Uint8Array): number {
  let best: Registered | undefined;
  let bestIds: number[] = [];
  seen.packets++;
  for (const r of registered) {
    if (!matchDescription(r.atoms, bytes)) continue;
    if (best && r.atoms.length < best.atoms.length) continue;
    const ids = r.atoms.map((a) => trie.fieldId(a));
    if (best && r.atoms.length === best.atoms.length) {
      seen.ties++;
      const k = ids.findIndex((id, i) => id !== bestIds[i]);
      if (k < 0 || ids[k] > bestIds[k]) continue;
    }
    best = r;
    bestIds = ids;
  }
  if (best) seen.matched++;
  return best ? best.owner : DPF_NONE;
}

// ---- packets in an arena ----------------------------------------------------------------

/** Puts each packet in a slot (capLen = its length); returns the burst vector. */
function putPackets(arena: Arena, packets: readonly Uint8Array[]): Uint32Array {
  const vec = arena.burstVector(Math.max(packets.length, 1));
  expect(arena.allocBurst(vec, packets.length)).toBe(packets.length);
  packets.forEach((p, i) => {
    arena.setPacket(vec[i], p.length, p.length, 0, 0, 0);
    arena.bytes.set(p, arena.dataOffset(vec[i]));
  });
  return vec;
}

function slotBytes(arena: Arena, slot: number): Uint8Array {
  return arena.bytes.subarray(arena.dataOffset(slot), arena.dataOffset(slot) + arena.capLen(slot));
}

/** Classifies vec[0..n) in one burst and compares every result with the reference. */
function expectReference(trie: DpfTrie, live: Iterable<Registered>, vec: Uint32Array, n: number, results: Uint32Array): void {
  const registered = [...live];
  const matched = trie.classifyBurst(vec, n, results);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const bytes = slotBytes(trie.arena, vec[i]);
    const want = referenceOwner(trie, registered, bytes);
    if (results[i] !== want) {
      const chosen = registered.find((r) => r.owner === results[i]);
      throw new Error(`packet ${i} [${Array.from(bytes).join(',')}]: trie chose ${results[i]} (${chosen ? descriptionKey(chosen.atoms) : '-'}), reference ${want}`);
    }
    if (want !== DPF_NONE) count++;
  }
  expect(matched).toBe(count);
}

const EMPTY = { owners: 0, nodes: 1, groups: 0, edges: 0, fields: 0, shapes: 1 };

function counts(trie: DpfTrie): typeof EMPTY {
  const { owners, nodes, groups, edges, fields, shapes } = trie.stats;
  return { owners, nodes, groups, edges, fields, shapes };
}

/** Edge-table slots in use, read with the documented layout (parent 0xffffffff: empty). */
function edgeSlotsInUse(trie: DpfTrie): number {
  const { edgeTable, edgeMask } = trie.tables;
  let used = 0;
  for (let i = 0; i <= edgeMask; i++) if (trie.arena.words[(edgeTable >>> 2) + i * 4] !== DPF_NONE) used++;
  return used;
}

// ---- random descriptions sharing prefixes -------------------------------------------------

// Packets are made of bytes 0 and 1 (and short), so that random atoms over the same
// alphabet match often and loads past the captured bytes are common.
const byte01 = fc.constantFrom(0, 1);

const compareAtom: fc.Arbitrary<DpfAtom> = fc
  .record({ offset: fc.integer({ min: 0, max: 7 }), size: fc.constantFrom(1, 2, 4), bytes: fc.array(byte01, { minLength: 4, maxLength: 4 }), masked: fc.boolean() })
  .map(({ offset, size, bytes, masked }) => {
    const full = size === 4 ? 0xffffffff : 2 ** (size * 8) - 1;
    const mask = masked ? 0x01010101 & full : full;
    const value = (loadBE(Uint8Array.from(bytes), 0, size) & mask) >>> 0;
    return { offset, size: size as 1 | 2 | 4, mask, value };
  });

const shiftAtom: fc.Arbitrary<DpfAtom> = fc.oneof(
  fc.record({ offset: fc.integer({ min: 0, max: 5 }), scale: fc.integer({ min: 1, max: 4 }), add: fc.integer({ min: 0, max: 2 }) })
    .map(({ offset, scale, add }) => ({ shift: { offset, size: 1 as const, mask: 0x03, scale, add } })),
  fc.integer({ min: 1, max: 3 }).map((add) => ({ shift: { add } })),
);

const atom = fc.oneof({ arbitrary: compareAtom, weight: 4 }, { arbitrary: shiftAtom, weight: 1 });

/** Descriptions built by extending earlier ones, so they share trie paths. */
const descriptions = fc
  .array(fc.record({ prefixOf: fc.nat(), prefixLen: fc.nat(), tail: fc.array(atom, { minLength: 1, maxLength: 4 }) }), { minLength: 8, maxLength: 40 })
  .map((steps) => {
    const raw: DpfAtom[][] = [[{ offset: 0, size: 1, value: 1 }]];
    for (const s of steps) {
      const prefix = raw.length ? raw[s.prefixOf % raw.length] : [];
      raw.push([...prefix.slice(0, s.prefixLen % (prefix.length + 1)), ...s.tail]);
    }
    const out: CanonicalAtom[][] = [];
    for (const d of raw) {
      try {
        out.push(canonicalDescription(d));
      } catch (err) {
        if (!(err instanceof NetpdError) || err.code !== 'EBADDESC') throw err;
      }
    }
    return out;
  });

const packets = fc.array(fc.array(byte01, { maxLength: 24 }).map((b) => Uint8Array.from(b)), { minLength: 16, maxLength: 64 });

function smallArena(): Arena {
  return Arena.create({ slotSize: 64, slotCount: 256, controlBytes: 1 << 20 });
}

/** Inserts each description not seen before (owner = its position); duplicates must throw EDUPDESC. */
function insertAll(trie: DpfTrie, descs: CanonicalAtom[][]): Map<string, Registered> {
  const registered = new Map<string, Registered>();
  descs.forEach((atoms, owner) => {
    const key = descriptionKey(atoms);
    if (registered.has(key)) {
      expect(() => trie.insert(atoms, owner)).toThrow(expect.objectContaining({ code: 'EDUPDESC' }));
    } else {
      trie.insert(atoms, owner);
      registered.set(key, { atoms, owner });
    }
  });
  return registered;
}

// ---- 5-tuple flows ---------------------------------------------------------------------------

interface Flow { src: number; dst: number; sport: number; dport: number }

function fiveTuple(f: Flow): CanonicalAtom[] {
  return canonicalDescription([
    { offset: 12, size: 2, value: 0x0800 },
    { offset: 23, size: 1, value: 6 },
    { offset: 20, size: 2, mask: 0x1fff, value: 0 },
    { offset: 26, size: 4, value: f.src },
    { offset: 30, size: 4, value: f.dst },
    { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } },
    { offset: 14, size: 2, value: f.sport },
    { offset: 16, size: 2, value: f.dport },
  ]);
}

/** An Ethernet + IPv4 (IHL 5) + TCP header for the flow, 54 bytes. */
function tcpPacket(f: Flow): Uint8Array {
  const p = new Uint8Array(54);
  const v = new DataView(p.buffer);
  v.setUint16(12, 0x0800);
  p[14] = 0x45;
  v.setUint16(16, 40);
  p[22] = 64;
  p[23] = 6;
  v.setUint32(26, f.src);
  v.setUint32(30, f.dst);
  v.setUint16(34, f.sport);
  v.setUint16(36, f.dport);
  p[46] = 0x50;
  return p;
}

/** n distinct flows, deterministic. */
function flows(n: number): Flow[] {
  const out: Flow[] = [];
  let x = 12345;
  const next = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < n; i++) {
    out.push({ src: (0x0a000000 | (next() & 0xffff)) >>> 0, dst: (0xc0a80000 | (i & 0xffff)) >>> 0, sport: 1024 + (next() % 60000), dport: [80, 443, 53, 22][i >>> 16] });
  }
  return out;
}

// ---- tests ---------------------------------------------------------------------------------

describe('DPF trie classification', () => {
  it('picks the owner the reference picks for random descriptions sharing prefixes, on random short packets', () => {
    fc.assert(
      fc.property(descriptions, packets, (descs, pkts) => {
        const arena = smallArena();
        const trie = DpfTrie.create(arena, { maxNodes: 512, maxFields: 256 });
        const registered = insertAll(trie, descs);
        const vec = putPackets(arena, pkts);
        expectReference(trie, registered.values(), vec, pkts.length, arena.burstVector(pkts.length));
      }),
      { numRuns: 300 },
    );
    // The generators are tuned so that matches, and ties the field-id rule decides, are common.
    expect(seen.matched).toBeGreaterThan(seen.packets / 4);
    expect(seen.ties).toBeGreaterThan(100);
  });

  it('picks the owner the reference picks on real captures, truncated packets included', () => {
    const arena = Arena.create({ slotSize: 65536, slotCount: 2048, controlBytes: 8 << 20 });
    const names = ['scapy-ipv4.pcap', 'scapy-ipv6.pcap', 'scapy-runts.pcap', 'scapy-snaplen.pcap', 'scapy-mutated.pcap', 'veth-snap64.pcap', 'veth-sockets.pcap'];
    const loaded = names.map((name) => loadCapture(arena, name, 1024));
    const reader = PcapReader.open(fileURLToPath(new URL('../samples/sample.pcap', import.meta.url)), { arena });
    const sample = arena.burstVector(1024);
    const sampleCount = reader.readBurst(sample, 1024);
    reader.close();
    loaded.push({ vec: sample, n: sampleCount });
    const truncated = loaded.reduce((t, { vec, n }) => t + Array.from(vec.subarray(0, n)).filter((s) => arena.capLen(s) < arena.wireLen(s)).length, 0);
    expect(truncated).toBeGreaterThan(0);

    // Descriptions built from fields of the packets themselves, so that many match.
    const all = loaded.flatMap(({ vec, n }) => Array.from(vec.subarray(0, n)));
    const templates: DpfAtom[][] = [
      [{ offset: 12, size: 2, value: -1 }],
      [{ offset: 12, size: 2, value: -1 }, { offset: 23, size: 1, value: -1 }],
      [{ offset: 12, size: 2, value: -1 }, { offset: 23, size: 1, value: -1 }, { offset: 26, size: 4, value: -1 }],
      [{ offset: 12, size: 2, value: -1 }, { offset: 23, size: 1, value: -1 }, { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } }, { offset: 16, size: 2, value: -1 }],
      [{ offset: 12, size: 2, value: -1 }, { offset: 23, size: 1, value: -1 }, { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } }, { offset: 14, size: 2, value: -1 }, { offset: 16, size: 2, value: -1 }],
      [{ offset: 12, size: 2, value: -1 }, { offset: 20, size: 1, value: -1 }],
      [{ offset: 12, size: 2, value: -1 }, { offset: 20, size: 1, value: -1 }, { shift: { add: 54 } }, { offset: 2, size: 2, value: -1 }],
      [{ offset: 12, size: 2, value: -1 }, { offset: 14, size: 1, mask: 0xf0, value: -1 }],
      [{ offset: 0, size: 4, mask: 0x01000000, value: -1 }, { offset: 12, size: 2, value: -1 }],
    ];
    const trie = DpfTrie.create(arena, { maxNodes: 8192, maxFields: 64 });
    const registered = new Map<string, Registered>();
    let owner = 0;
    for (let i = 0; registered.size < 400 && i < 20000; i++) {
      const slot = all[(i * 7919) % all.length];
      const bytes = slotBytes(arena, slot);
      const filled: DpfAtom[] = [];
      let base = 0;
      let ok = true;
      for (const a of templates[(i * 31) % templates.length]) {
        if ('shift' in a) {
          const s = a.shift;
          if ((s.size ?? 0) === 0) base += s.add ?? 0;
          else if (base + (s.offset ?? 0) + 1 > bytes.length) ok = false;
          else base += (bytes[base + (s.offset ?? 0)] & (s.mask ?? 0xff)) * (s.scale ?? 1) + (s.add ?? 0);
          filled.push(a);
        } else if (base + a.offset + a.size > bytes.length) {
          ok = false;
        } else {
          const mask = a.mask ?? (a.size === 4 ? 0xffffffff : 2 ** (a.size * 8) - 1);
          filled.push({ ...a, mask, value: (loadBE(bytes, base + a.offset, a.size) & mask) >>> 0 });
        }
      }
      if (!ok) continue;
      const atoms = canonicalDescription(filled);
      const key = descriptionKey(atoms);
      if (registered.has(key)) continue;
      trie.insert(atoms, owner);
      registered.set(key, { atoms, owner: owner++ });
    }
    expect(registered.size).toBe(400);
    const results = arena.burstVector(1024);
    let matched = 0;
    for (const { vec, n } of loaded) {
      expectReference(trie, registered.values(), vec, n, results);
      matched += trie.classifyBurst(vec, n, results);
    }
    expect(matched).toBeGreaterThan(all.length / 2);
  });

  it('gives the longest matching description the packet, and the smaller field id among equals', () => {
    const arena = smallArena();
    const trie = DpfTrie.create(arena, { maxNodes: 64 });
    const ip = canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }]);
    const tcp = canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }, { offset: 23, size: 1, value: 6 }]);
    const ttl = canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }, { offset: 22, size: 1, value: 64 }]);
    trie.insert(ip, 1);
    trie.insert(ttl, 3);
    trie.insert(tcp, 2);
    const vec = putPackets(arena, [tcpPacket({ src: 1, dst: 2, sport: 3, dport: 4 })]);
    // tcp and ttl both match with two atoms; ttl's field [22:1] was interned first.
    expect(trie.fieldId(ttl[1])).toBeLessThan(trie.fieldId(tcp[1]));
    expect(trie.classify(vec[0])).toBe(3);
    trie.remove(ttl);
    expect(trie.classify(vec[0])).toBe(2);
    trie.remove(tcp);
    expect(trie.classify(vec[0])).toBe(1);
  });
});

describe('DPF trie bounds', () => {
  it('fails a shift that moves the base past the captured bytes, even where 32-bit arithmetic would wrap to 0', () => {
    const arena = smallArena();
    const trie = DpfTrie.create(arena, { maxNodes: 16 });
    // (0x01000000 * 256) mod 2^32 = 0: a wrapped base would read byte 0 again.
    const atoms = canonicalDescription([{ shift: { offset: 0, size: 4, scale: 256 } }, { offset: 0, size: 1, value: 1 }]);
    trie.insert(atoms, 5);
    const vec = putPackets(arena, [Uint8Array.of(1, 0, 0, 0, 1, 1, 1, 1)]);
    expect(matchDescription(atoms, slotBytes(arena, vec[0]))).toBe(false);
    expect(trie.classify(vec[0])).toBe(DPF_NONE);
  });

  it('refuses atoms that are not canonical and owner values it cannot return', () => {
    const trie = DpfTrie.create(smallArena(), { maxNodes: 16 });
    const ok = canonicalDescription([{ offset: 0, size: 1, value: 1 }]);
    expect(() => trie.insert([{ kind: 'compare', offset: 0, size: 1, mask: 0x0f, value: 0x10 }], 1)).toThrow(expect.objectContaining({ code: 'EBADDESC' }));
    expect(() => trie.insert([{ kind: 'shift', offset: 0, size: 0, mask: 0, scale: 0, add: 4 }], 1)).toThrow(expect.objectContaining({ code: 'EBADDESC' }));
    expect(() => trie.insert([], 1)).toThrow(expect.objectContaining({ code: 'EBADDESC' }));
    // An offset past 16 bits must not spill into the size and kind bits of the encoding.
    expect(() => trie.insert([{ kind: 'compare', offset: 0x10000, size: 1, mask: 0xff, value: 1 }], 1)).toThrow(expect.objectContaining({ code: 'EBADDESC' }));
    expect(() => trie.insert(ok, DPF_NONE)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(counts(trie)).toEqual(EMPTY);
  });
});

describe('DPF trie insert and remove', () => {
  it('refuses an equal description with EDUPDESC, whatever the order of its compares', () => {
    const trie = DpfTrie.create(smallArena(), { maxNodes: 64 });
    trie.insert(canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }, { offset: 23, size: 1, value: 17 }]), 7);
    const before = trie.stats;
    const same = canonicalDescription([{ offset: 23, size: 1, value: 17 }, { offset: 12, size: 2, mask: 0xffff, value: 0x0800 }]);
    expect(() => trie.insert(same, 8)).toThrow(expect.objectContaining({ code: 'EDUPDESC' }));
    expect(trie.stats).toEqual(before);
    // A prefix of a registered description is a different description.
    trie.insert(canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }]), 9);
    expect(trie.stats.owners).toBe(2);
  });

  it('refuses with EFULL when records, edges or fields run out, and changes nothing then', () => {
    // maxNodes 9: the third description needs a record for a second group at node 1.
    for (const caps of [{ maxNodes: 10 }, { maxNodes: 9 }, { maxNodes: 100, maxEdges: 9 }, { maxNodes: 100, maxFields: 4 }]) {
      const arena = smallArena();
      const trie = DpfTrie.create(arena, caps);
      const registered: Registered[] = [];
      let refused = 0;
      for (let i = 0; i < 40; i++) {
        const atoms = canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }, { offset: 14 + (i % 3), size: 1, value: i }, { offset: 30, size: 1, value: i & 7 }]);
        const before = trie.stats;
        try {
          trie.insert(atoms, i);
          registered.push({ atoms, owner: i });
        } catch (err) {
          expect(err).toMatchObject({ code: 'EFULL' });
          expect(trie.stats).toEqual(before);
          refused++;
        }
        const s = trie.stats;
        expect(s.nodes + s.groups).toBeLessThanOrEqual(caps.maxNodes);
        expect(s.edges).toBeLessThanOrEqual(caps.maxEdges ?? caps.maxNodes);
        expect(s.fields).toBeLessThanOrEqual(caps.maxFields ?? 4096);
      }
      expect(refused).toBeGreaterThan(0);
      const pkts = Array.from({ length: 40 }, (_, i) => {
        const p = new Uint8Array(40);
        p[12] = 8; p[14 + (i % 3)] = i; p[30] = i & 7;
        return p;
      });
      expectReference(trie, registered, putPackets(arena, pkts), pkts.length, arena.burstVector(pkts.length));
      for (const r of registered) expect(trie.remove(r.atoms)).toBe(true);
      expect(counts(trie)).toEqual(EMPTY);
    }
  });

  it('counts a new field once when a description tests it twice (across a shift)', () => {
    const trie = DpfTrie.create(smallArena(), { maxNodes: 16, maxFields: 2 });
    trie.insert(canonicalDescription([{ offset: 0, size: 1, value: 1 }, { shift: { add: 2 } }, { offset: 0, size: 1, value: 3 }]), 1);
    expect(trie.stats.fields).toBe(2);
  });

  it('keeps classifying like the reference through insert/remove churn, and returns every count to its start', () => {
    fc.assert(
      fc.property(descriptions, packets, fc.array(fc.nat(), { minLength: 20, maxLength: 80 }), (descs, pkts, ops) => {
        const arena = smallArena();
        const trie = DpfTrie.create(arena, { maxNodes: 512, maxFields: 256 });
        const vec = putPackets(arena, pkts);
        const results = arena.burstVector(pkts.length);
        const live = new Map<string, Registered>();
        for (const [step, op] of ops.entries()) {
          const atoms = descs[op % descs.length];
          const key = descriptionKey(atoms);
          if (live.has(key)) {
            expect(trie.remove(atoms)).toBe(true);
            expect(trie.remove(atoms)).toBe(false);
            live.delete(key);
          } else {
            trie.insert(atoms, step);
            live.set(key, { atoms, owner: step });
          }
          expect(trie.stats.owners).toBe(live.size);
          expectReference(trie, live.values(), vec, pkts.length, results);
        }
        for (const r of live.values()) expect(trie.remove(r.atoms)).toBe(true);
        expect(counts(trie)).toEqual(EMPTY);
        expect(edgeSlotsInUse(trie)).toBe(0);
        expect(trie.classifyBurst(vec, pkts.length, results)).toBe(0);
      }),
      { numRuns: 150 },
    );
  });
});

describe('DPF trie at 100,000 owners', () => {
  it('delivers each 5-tuple flow to its owner alone, and keeps the structure version while owners come and go', () => {
    const N = 100_000;
    const arena = Arena.create({ slotSize: 64, slotCount: N + 16, controlBytes: 40 << 20 });
    const trie = DpfTrie.create(arena, { maxNodes: 5 * N + 64, maxFields: 64 });
    const fs = flows(N);
    fs.forEach((f, i) => trie.insert(fiveTuple(f), i));
    expect(trie.stats.owners).toBe(N);
    let version = trie.structureVersion;
    // One shape path: 8 fields deep, whatever the number of owners.
    expect(trie.stats.shapes).toBe(9);

    const vec = putPackets(arena, fs.map(tcpPacket));
    const results = arena.burstVector(N);
    expect(trie.classifyBurst(vec, N, results)).toBe(N);
    for (let i = 0; i < N; i++) if (results[i] !== i) throw new Error(`flow ${i} went to ${results[i]}`);

    // A flow nobody registered reaches no one; a less specific owner then takes it,
    // but no registered flow.
    const stray = putPackets(arena, [tcpPacket({ ...fs[0], dport: 9 }), tcpPacket(fs[1])]);
    const two = arena.burstVector(2);
    trie.classifyBurst(stray, 2, two);
    expect(Array.from(two)).toEqual([DPF_NONE, 1]);
    const anyTcp = canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }, { offset: 23, size: 1, value: 6 }]);
    trie.insert(anyTcp, N);
    trie.classifyBurst(stray, 2, two);
    expect(Array.from(two)).toEqual([N, 1]);
    // [23:1] right under [12:2] is a new shape node: the structure changed, and changes
    // back when it goes.
    expect(trie.structureVersion).not.toBe(version);
    version = trie.structureVersion;
    trie.remove(anyTcp);
    expect(trie.structureVersion).not.toBe(version);
    version = trie.structureVersion;

    // Another 5-tuple under the existing hash nodes: data only.
    const extra = fiveTuple({ src: fs[5].src, dst: 0x01020304, sport: 1, dport: 2 });
    trie.insert(extra, N + 1);
    expect(trie.structureVersion).toBe(version);
    trie.remove(extra);
    expect(trie.structureVersion).toBe(version);
    // A new field under a shape node: the shape changes, and again when it goes.
    const ttl = canonicalDescription([{ offset: 12, size: 2, value: 0x0800 }, { offset: 22, size: 1, value: 64 }]);
    trie.insert(ttl, N + 2);
    expect(trie.structureVersion).not.toBe(version);
    const v2 = trie.structureVersion;
    trie.remove(ttl);
    expect(trie.structureVersion).not.toBe(v2);

    for (const f of fs) trie.remove(fiveTuple(f));
    expect(counts(trie)).toEqual(EMPTY);
    expect(edgeSlotsInUse(trie)).toBe(0);
  });
});

describe('DPF trie tables for generated code', () => {
  it('computes the documented hash in the core and in TypeScript alike', () => {
    const trie = DpfTrie.create(smallArena(), { maxNodes: 4 });
    fc.assert(
      fc.property(fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(0xffffffff), (a, b, c) => {
        expect(trie.arena.core.dpf_hash(a, b, c) >>> 0).toBe(dpfHash(a, b, c));
      }),
    );
  });

  it('finds every edge with the documented probe and layouts, and exposes the shape tree', () => {
    const arena = smallArena();
    const trie = DpfTrie.create(arena, { maxNodes: 256 });
    const fs = flows(20);
    fs.forEach((f, i) => trie.insert(fiveTuple(f), i));
    const w = arena.words;
    const { pool, edgeTable, edgeMask } = trie.tables;
    const probe = (parent: number, field: number, value: number): number => {
      for (let i = dpfHash(parent, field, value) & edgeMask; ; i = (i + 1) & edgeMask) {
        const e = (edgeTable >>> 2) + i * 4;
        if (w[e] === DPF_NONE) return -1;
        if (w[e] === parent && w[e + 1] === field && w[e + 2] === value) return w[e + 3];
      }
    };
    fs.forEach((f, i) => {
      let node = 0;
      for (const a of fiveTuple(f)) {
        // The node's groups, walked from its record: field at +4, next record at +12.
        const groups: number[] = [];
        for (let g = node; g !== DPF_NONE; g = w[(pool >>> 2) + g * 4 + 3]) groups.push(w[(pool >>> 2) + g * 4 + 1]);
        const id = trie.fieldId(a);
        expect(groups).toContain(id);
        expect(groups).toEqual([...groups].sort((x, y) => x - y));
        node = probe(node, id, a.kind === 'compare' ? a.value : 0);
        expect(node).toBeGreaterThan(0);
      }
      expect(w[(pool >>> 2) + node * 4]).toBe(i);
    });
    const tree = trie.shapeTree();
    const fields: string[] = [];
    for (let s = tree; s.children.length; s = s.children[0]) {
      expect(s.children).toHaveLength(1);
      fields.push(JSON.stringify(trie.field(s.children[0].fieldId)));
    }
    expect(fields).toHaveLength(8);
    expect(JSON.parse(fields[5])).toEqual({ kind: 'shift', offset: 14, size: 1, mask: 0x0f, scale: 4, add: 0 });
    const words = new Uint32Array(4);
    encodeAtom(fiveTuple(fs[0])[5], words, 0);
    expect(Array.from(words)).toEqual([0x0101000e, 0x0f, 4 << 16, 0]);
  });
});
