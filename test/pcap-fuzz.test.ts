// Damaged capture files, generated: every prefix of small files, and fast-check mutations
// (byte flips, corrupted length fields, inserted garbage, cuts) of valid ones. The reader
// must either read packets or throw NetpdError EPCAP: never another exception, never a
// hang (iteration is bounded), and never more packets than the bytes can hold.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Arena } from '../bindings/arena.js';
import { NetpdError } from '../bindings/errors.js';
import { PcapReader, type PcapPacket } from '../bindings/pcap/index.js';
import { fixturePath } from './fixtures/pcap/expect.js';

let dir: string;
let path: string;
let arena: Arena;
let vec: Uint32Array;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'netpd-pcap-fuzz-'));
  path = join(dir, 'mutant.cap');
  arena = Arena.create({ slotSize: 2048, slotCount: 64 });
  vec = arena.burstVector(64);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const SEEDS = ['small.pcap', 'small.pcapng', 'spb.pcapng', 'be-options.pcapng', 'eth-nsec-be.pcap'];
const seedBytes = new Map(SEEDS.map((s) => [s, readFileSync(fixturePath(s))]));

interface Outcome {
  packets: number;
  error: NetpdError | null;
}

/**
 * Reads `bytes` to the end or to the first error, two ways (next() with a tiny buffer,
 * readBurst through the arena with another), checking the invariants on the way.
 */
function readBoth(bytes: Uint8Array): Outcome {
  writeFileSync(path, bytes);
  // Every classic record takes >= 16 bytes after a 24-byte header; every pcapng packet
  // block >= 16 bytes after a 28-byte SHB.
  const maxPackets = Math.max(0, Math.floor((bytes.length - 24) / 16));
  let captured = 0;
  const a = outcome((count) => {
    const r = PcapReader.open(path, { chunkSize: 64 });
    try {
      for (let p = r.next(); p !== null; p = r.next()) {
        checkPacket(p, r);
        if (count() > maxPackets) throw new Error(`read more than ${maxPackets} packets from ${bytes.length} bytes`);
        // packets' bytes come from the file, each byte once: never more than it holds
        captured += p.capLen;
        if (captured > bytes.length) throw new Error(`read ${captured} packet bytes from a ${bytes.length}-byte file`);
      }
      expect(r.eof).toBe(true);
    } finally {
      r.close();
    }
  });
  const b = outcome((count) => {
    const r = PcapReader.open(path, { arena, chunkSize: 1000 });
    try {
      for (let calls = 0; ; calls++) {
        if (calls > maxPackets + 2) throw new Error('readBurst did not reach the end: a hang');
        const k = r.readBurst(vec, 7);
        arena.freeBurst(vec, k);
        for (let i = 0; i < k; i++) count();
        if (k === 0) break;
      }
      expect(r.eof).toBe(true);
    } finally {
      r.close();
    }
  });
  if (b.packets > maxPackets) throw new Error(`read ${b.packets} packets from ${bytes.length} bytes`);
  // Both ways deliver the same packets before the damage, and report the same damage.
  expect(b.packets).toBe(a.packets);
  expect(b.error?.message).toBe(a.error?.message);
  expect(arena.stats.inUse).toBe(0);
  return a;
}

/** Runs a read, counting packets through `count`; an EPCAP ends it, anything else fails the test. */
function outcome(read: (count: () => number) => void): Outcome {
  let packets = 0;
  try {
    read(() => ++packets);
    return { packets, error: null };
  } catch (err) {
    if (!(err instanceof NetpdError) || err.code !== 'EPCAP') throw err;
    expect(err.message).toMatch(/ at byte \d+ of /);
    return { packets, error: err };
  }
}

function checkPacket(p: PcapPacket, r: PcapReader): void {
  expect(p.data.length).toBe(p.capLen);
  expect(p.capLen).toBeLessThanOrEqual(262144);
  expect(p.nsec >= 0 && p.nsec < 1e9).toBe(true);
  expect(p.ifIndex).toBeLessThan(r.interfaces.length);
}

describe('truncating a file at every offset', () => {
  for (const name of ['small.pcap', 'small.pcapng']) {
    it(`${name}: every prefix reads a prefix of the packets, or fails with EPCAP`, () => {
      const whole = seedBytes.get(name) as Buffer;
      const all = PcapReader.readAllFromFile(fixturePath(name));
      // record boundaries: where each packet's record ends
      const ends: number[] = [];
      {
        const r = PcapReader.open(fixturePath(name));
        while (r.next() !== null) ends.push(r.offset);
        r.close();
      }
      for (let cut = 0; cut <= whole.length; cut++) {
        const o = readBoth(whole.subarray(0, cut));
        const complete = ends.filter((e) => e <= cut).length;
        expect(o.packets).toBeLessThanOrEqual(complete);
        if (ends.includes(cut)) {
          // a cut at a record boundary is a clean, shorter file
          expect(o.error).toBeNull();
          expect(o.packets).toBe(complete);
          expect(PcapReader.readAllFromFile(path)).toEqual(all.slice(0, complete));
        }
        if (cut > 0 && cut < whole.length && !ends.includes(cut) && cut >= (ends[0] ?? 0)) {
          // cut inside a record after the first: an error, after all the whole records
          expect(o.error).not.toBeNull();
          expect(o.packets).toBe(complete);
        }
      }
    });
  }
});

describe('mutated files', () => {
  const seed = fc.constantFrom(...SEEDS);

  it('flipped bytes', () => {
    fc.assert(fc.property(seed, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (name, flips) => {
      const b = Buffer.from(seedBytes.get(name) as Buffer);
      for (const [at, v] of flips) b[at % b.length] = v;
      readBoth(b);
    }), { numRuns: 300 });
  });

  it('corrupted length fields (record lengths, block lengths, trailers, option lengths)', () => {
    const special = fc.constantFrom(0, 1, 3, 4, 7, 8, 11, 12, 15, 16, 27, 28, 31, 32, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff, 262144, 262145);
    fc.assert(fc.property(seed, fc.nat(), fc.oneof(special, fc.nat({ max: 0xffffffff })), fc.boolean(), (name, pick, value, le) => {
      const b = Buffer.from(seedBytes.get(name) as Buffer);
      // aim at a 4-byte-aligned word, which is where every length field of both formats lives
      const at = (pick % Math.floor(b.length / 4)) * 4;
      if (le) b.writeUInt32LE(value >>> 0, at);
      else b.writeUInt32BE(value >>> 0, at);
      readBoth(b);
    }), { numRuns: 300 });
  });

  it('inserted or deleted garbage', () => {
    fc.assert(fc.property(seed, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat({ max: 64 }), (name, pick, garbage, del) => {
      const b = seedBytes.get(name) as Buffer;
      const at = pick % (b.length + 1);
      readBoth(Buffer.concat([b.subarray(0, at), garbage, b.subarray(Math.min(b.length, at + del))]));
    }), { numRuns: 200 });
  });

  it('random bytes after a valid header', () => {
    fc.assert(fc.property(seed, fc.uint8Array({ minLength: 0, maxLength: 600 }), (name, tail) => {
      const b = seedBytes.get(name) as Buffer;
      const head = b.subarray(0, name.endsWith('.pcapng') ? 28 : 24);
      readBoth(Buffer.concat([head, tail]));
    }), { numRuns: 200 });
  });
});
