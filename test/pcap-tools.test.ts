// Captures written by tools we did not write (tcpdump, scapy, editcap, mergecap, and
// struct for the block kinds no tool writes) read exactly as tshark reads them:
// every packet's lengths, timestamp, interface and bytes.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Arena } from '../bindings/arena.js';
import { PcapReader } from '../bindings/pcap/index.js';
import {
  FIXTURES, asExpected, epoch, fixturePath, loadExpectation, sha256, tsharkRead, tsharkVersion,
  type ExpectedPacket,
} from './fixtures/pcap/expect.js';

const tshark = tsharkVersion();
if (!tshark) console.log('pcap-tools: tshark is not installed; live re-derivation of the fixtures is skipped (stored expectations still run)');

function ourReading(name: string, chunkSize?: number): ExpectedPacket[] {
  const expected = loadExpectation(name).packets;
  const reader = PcapReader.open(fixturePath(name), chunkSize ? { chunkSize } : {});
  try {
    const out: ExpectedPacket[] = [];
    let i = 0;
    for (const p of reader.packets()) {
      out.push(asExpected(p, i + 1, reader.interfaces, reader.format === 'pcapng', (i < expected.length ? expected[i].timeEpoch : '')));
      i++;
    }
    return out;
  } finally {
    reader.close();
  }
}

describe('fixtures written by other tools read as tshark reads them', () => {
  for (const { name, about } of FIXTURES) {
    describe(`${name}: ${about}`, () => {
      it('the stored expectation belongs to this fixture file', () => {
        const exp = loadExpectation(name);
        expect(exp.file).toBe(name);
        expect(sha256(readFileSync(fixturePath(name)))).toBe(exp.sha256);
        expect(exp.packets.length).toBeGreaterThan(0);
      });

      it('every packet matches the stored tshark reading', () => {
        expect(ourReading(name)).toEqual(loadExpectation(name).packets);
      });

      it('reads the same through a 64-byte buffer (records larger than the buffer)', () => {
        expect(ourReading(name, 64)).toEqual(loadExpectation(name).packets);
      });

      it.skipIf(!tshark)('tshark, run now, still reads what is stored', () => {
        expect(tsharkRead(fixturePath(name))).toEqual(loadExpectation(name).packets);
      });
    });
  }
});

describe('readBurst into the arena gives the same packets as tshark', () => {
  let arena: Arena;
  let vec: Uint32Array;
  beforeAll(() => {
    arena = Arena.create({ slotSize: 16384, slotCount: 256 });
    vec = arena.burstVector(64);
  });
  afterAll(() => {
    expect(arena.stats.inUse).toBe(0);
  });

  for (const { name } of FIXTURES) {
    it(`${name}`, () => {
      const expected = loadExpectation(name).packets;
      const reader = PcapReader.open(fixturePath(name), { arena, chunkSize: 4096 });
      const got: ExpectedPacket[] = [];
      try {
        for (;;) {
          const k = reader.readBurst(vec, 7);
          if (k === 0) break;
          for (let i = 0; i < k; i++) {
            const slot = vec[i];
            const cap = arena.capLen(slot);
            const off = arena.dataOffset(slot);
            const data = arena.bytes.slice(off, off + cap);
            const idx = got.length;
            got.push(asExpected(
              { data, capLen: cap, wireLen: arena.wireLen(slot), sec: arena.timestampSec(slot), nsec: arena.timestampNsec(slot), ifIndex: arena.ifIndex(slot) },
              idx + 1, reader.interfaces, reader.format === 'pcapng', (idx < expected.length ? expected[idx].timeEpoch : '')));
          }
          arena.freeBurst(vec, k);
        }
        expect(reader.eof).toBe(true);
        expect(reader.packetsRead).toBe(expected.length);
        expect(reader.bytesRead).toBe(expected.reduce((s, p) => s + p.capLen, 0));
      } finally {
        reader.close();
      }
      expect(got).toEqual(expected);
    });
  }
});

describe('file-level facts the reader reports', () => {
  it('classic pcap: byte order, resolution, link type, snaplen, version', () => {
    const cases: Array<[string, 'le' | 'be', boolean, number]> = [
      ['eth-usec-le.pcap', 'le', false, 1],
      ['eth-usec-be.pcap', 'be', false, 1],
      ['eth-nsec-le.pcap', 'le', true, 1],
      ['eth-nsec-be.pcap', 'be', true, 1],
      ['rawip-usec.pcap', 'le', false, 101],
    ];
    for (const [name, order, nano, linkType] of cases) {
      const r = PcapReader.open(fixturePath(name));
      expect(r.format).toBe('pcap');
      expect(r.byteOrder).toBe(order);
      expect(r.nanosecond).toBe(nano);
      expect(r.linkType).toBe(linkType);
      expect(r.snaplen).toBe(65535);
      expect(r.version).toEqual({ major: 2, minor: 4 });
      expect(r.interfaces).toHaveLength(1);
      expect(r.interfaces[0].tsresol).toBe(nano ? 1e9 : 1e6);
      r.close();
    }
  });

  it('pcapng with several interfaces lists them with link types and resolutions', () => {
    const r = PcapReader.open(fixturePath('multi-if.pcapng'));
    expect(r.format).toBe('pcapng');
    expect(r.linkType).toBe(1);
    expect(r.mixedLinkTypes).toBe(true);
    expect(r.interfaces.map((i) => [i.linkType, i.snaplen, i.tsresol, i.section, i.localId]))
      .toEqual([[1, 65535, 1e6, 0, 0], [101, 65535, 1e6, 0, 1], [1, 65535, 1e9, 0, 2]]);
    r.close();
  });

  it('big-endian pcapng: names, resolutions, byte order', () => {
    const r = PcapReader.open(fixturePath('be-options.pcapng'));
    expect(r.byteOrder).toBe('be');
    expect(r.version).toEqual({ major: 1, minor: 0 });
    expect(r.interfaces.map((i) => [i.name, i.linkType, i.snaplen, i.tsresol]))
      .toEqual([['eth-be', 1, 0, 1e9], ['raw-be', 101, 65535, 1e3]]);
    r.close();
  });

  it('power-of-2 resolutions and if_tsoffset are reported', () => {
    const r = PcapReader.open(fixturePath('pow2.pcapng'));
    expect(r.interfaces.map((i) => i.tsresol)).toEqual([2 ** 20, 2 ** 32]);
    r.close();
    const o = PcapReader.open(fixturePath('tsoffset.pcapng'));
    expect(o.interfaces[0].tsoffset).toBe(-1000);
    o.close();
  });

  it('several sections: interfaces accumulate, ifIndex is global, byte order follows the section', () => {
    const r = PcapReader.open(fixturePath('sections.pcapng'));
    expect(r.sections).toBe(1);
    expect(r.byteOrder).toBe('le');
    const seen = new Set<string>();
    for (const p of r.packets()) {
      const i = r.interfaces[p.ifIndex];
      seen.add(`${p.ifIndex}:${i.section}:${i.localId}`);
    }
    expect([...seen].sort()).toEqual(['0:0:0', '1:1:0', '2:1:1', '3:2:0']);
    expect(r.sections).toBe(3);
    expect(r.byteOrder).toBe('le');
    expect(r.interfaces.map((i) => i.name ?? null)).toEqual([null, 'eth-be', 'raw-be', 'spb0']);
    r.close();
  });

  it('Simple Packet Blocks: captured length is min(original, snaplen), no timestamp', () => {
    const packets = PcapReader.readAllFromFile(fixturePath('spb.pcapng'));
    const jumbo = packets.find((p) => p.wireLen > 9000);
    expect(jumbo).toBeDefined();
    expect(jumbo?.capLen).toBe(128);
    expect(packets.every((p) => p.capLen === Math.min(p.wireLen, 128) && epoch(p.sec, p.nsec) === '0.000000000')).toBe(true);
  });
});
