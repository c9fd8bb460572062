// PcapReader behaviour that the fixtures alone do not pin down: arena exhaustion,
// oversized records, exact timestamp arithmetic, non-seekable input, and every kind of
// damaged file naming its problem and byte offset.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Arena, SLOT_TRUNCATED } from '../bindings/arena.js';
import { PcapReader, type PcapPacket } from '../bindings/pcap/index.js';
import { NgBuilder, payload, pcapFile } from './fixtures/pcap/build.js';
import { thrown } from './support/slots.js';
import { fixturePath, tsharkRead, tsharkVersion } from './fixtures/pcap/expect.js';

const tshark = tsharkVersion();
if (!tshark) console.log('pcap-reader: tshark is not installed; cross-checks of the in-memory builders against tshark are skipped');

let dir: string;
let counter = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'netpd-pcap-reader-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(bytes: Uint8Array, name = `f${counter++}.cap`): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** Drains a reader through an arena in bursts, returning copies of the packets. */
function drain(reader: PcapReader, arena: Arena, vec: Uint32Array, burst: number): PcapPacket[] {
  const out: PcapPacket[] = [];
  for (;;) {
    const k = reader.readBurst(vec, burst);
    if (k === 0) break;
    for (let i = 0; i < k; i++) out.push(slotPacket(arena, vec[i]));
    arena.freeBurst(vec, k);
  }
  return out;
}

function slotPacket(arena: Arena, slot: number): PcapPacket {
  const off = arena.dataOffset(slot);
  const cap = arena.capLen(slot);
  return {
    data: arena.bytes.slice(off, off + cap), capLen: cap, wireLen: arena.wireLen(slot),
    sec: arena.timestampSec(slot), nsec: arena.timestampNsec(slot), ifIndex: arena.ifIndex(slot),
  };
}

describe('arena exhaustion', () => {
  it('returns partial bursts when the arena runs short and resumes without losing or repeating a record', () => {
    const arena = Arena.create({ slotSize: 16384, slotCount: 5 });
    const vec = arena.burstVector(16);
    const held = arena.burstVector(16);
    const all = PcapReader.readAllFromFile(fixturePath('multi-if.pcapng'));
    const reader = PcapReader.open(fixturePath('multi-if.pcapng'), { arena, chunkSize: 4096 });
    const got: PcapPacket[] = [];

    expect(reader.readBurst(vec, 16)).toBe(5); // arena of 5 slots
    for (let i = 0; i < 5; i++) got.push(slotPacket(arena, vec[i]));
    for (let i = 0; i < 5; i++) held[i] = vec[i];
    expect(reader.readBurst(vec, 16)).toBe(0); // nothing free
    expect(reader.eof).toBe(false);
    expect(reader.packetsRead).toBe(5);
    arena.freeBurst(held, 2); // free two
    expect(reader.readBurst(vec, 16)).toBe(2);
    for (let i = 0; i < 2; i++) got.push(slotPacket(arena, vec[i]));
    arena.freeBurst(vec, 2);
    held.copyWithin(0, 2, 5);
    arena.freeBurst(held, 3);
    got.push(...drain(reader, arena, vec, 16));
    expect(reader.eof).toBe(true);
    expect(got).toEqual(all);
    expect(arena.stats.inUse).toBe(0);
    reader.close();
  });

  it('any schedule of burst sizes and frees delivers every record exactly once, in order', () => {
    const arena = Arena.create({ slotSize: 16384, slotCount: 8 });
    const vec = arena.burstVector(32);
    const held = arena.burstVector(64);
    const files = ['eth-usec-be.pcap', 'sections.pcapng', 'be-options.pcapng'];
    const expected = new Map(files.map((f) => [f, PcapReader.readAllFromFile(fixturePath(f))]));
    fc.assert(fc.property(
      fc.constantFrom(...files),
      fc.array(fc.tuple(fc.integer({ min: 1, max: 32 }), fc.integer({ min: 0, max: 8 })), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 64, max: 20000 }),
      (name, schedule, chunkSize) => {
        const reader = PcapReader.open(fixturePath(name), { arena, chunkSize });
        const got: PcapPacket[] = [];
        let nheld = 0;
        try {
          for (let step = 0; !reader.eof; step++) {
            const [burst, frees] = schedule[step % schedule.length];
            const k = reader.readBurst(vec, burst);
            for (let i = 0; i < k; i++) {
              got.push(slotPacket(arena, vec[i]));
              held[nheld++] = vec[i];
            }
            // free `frees` of the oldest held slots (everything if the arena is full)
            const f = arena.free === 0 && k === 0 ? nheld : Math.min(frees, nheld);
            arena.freeBurst(held, f);
            held.copyWithin(0, f, nheld);
            nheld -= f;
            if (step > 10000) throw new Error('no progress');
          }
        } finally {
          arena.freeBurst(held, nheld);
          reader.close();
        }
        expect(got).toEqual(expected.get(name));
        expect(arena.stats.inUse).toBe(0);
      },
    ), { numRuns: 60 });
  });
});

describe('records larger than a slot', () => {
  it('keep slotSize bytes, their wire and captured length, and set the truncated flag', () => {
    const arena = Arena.create({ slotSize: 1024, slotCount: 64 });
    const vec = arena.burstVector(64);
    const before = arena.stats.truncated;
    const reader = PcapReader.open(fixturePath('eth-usec-le.pcap'), { arena, chunkSize: 2048 });
    const full = PcapReader.readAllFromFile(fixturePath('eth-usec-le.pcap'));
    let seen = 0;
    let truncated = 0;
    for (;;) {
      const k = reader.readBurst(vec, 64);
      if (k === 0) break;
      for (let i = 0; i < k; i++) {
        const slot = vec[i];
        const p = full[seen++];
        const isBig = p.capLen > 1024;
        expect(arena.capLen(slot)).toBe(Math.min(p.capLen, 1024));
        expect(arena.wireLen(slot)).toBe(p.wireLen);
        expect((arena.flags(slot) & SLOT_TRUNCATED) !== 0).toBe(isBig);
        const off = arena.dataOffset(slot);
        expect(Buffer.from(arena.bytes.subarray(off, off + arena.capLen(slot))).equals(Buffer.from(p.data.subarray(0, 1024)))).toBe(true);
        if (isBig) truncated++;
      }
      arena.freeBurst(vec, k);
    }
    expect(seen).toBe(full.length);
    expect(truncated).toBe(2); // the 1514-byte frame and the 9014-byte jumbo
    expect(arena.stats.truncated - before).toBe(2);
    expect(reader.bytesRead).toBe(full.reduce((s, p) => s + p.capLen, 0));
    reader.close();
  });

  it('a record much larger than the read buffer is read whole (buffer grows, then shrinks back)', () => {
    const big = payload(200000, 3);
    const path = file(pcapFile({ snaplen: 262144 }, [
      { sec: 1, frac: 2, data: payload(100) }, { sec: 3, frac: 4, data: big }, { sec: 5, frac: 6, data: payload(70) },
    ]));
    const packets = PcapReader.readAllFromFile(path, { chunkSize: 256 });
    expect(packets.map((p) => p.capLen)).toEqual([100, 200000, 70]);
    expect(Buffer.from(packets[1].data).equals(Buffer.from(big))).toBe(true);
  });
});

describe('timestamps', () => {
  function refTs(hi: number, lo: number, tsresol: number, offset: bigint): [number, number] {
    const units = (tsresol & 0x80) !== 0 ? 1n << BigInt(tsresol & 0x7f) : 10n ** BigInt(tsresol);
    const ts = (BigInt(hi) << 32n) | BigInt(lo);
    return [Number(ts / units + offset), Number(((ts % units) * 1000000000n) / units)];
  }

  it('pcapng times are exact for every power-of-10 and power-of-2 resolution', () => {
    const resolutions = [...Array.from({ length: 20 }, (_, k) => k), ...Array.from({ length: 64 }, (_, k) => 0x80 | k)];
    fc.assert(fc.property(
      fc.constantFrom(...resolutions),
      fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }),
      fc.bigInt({ min: -(2n ** 31n), max: 2n ** 31n }),
      (tsresol, hi0, lo, offset) => {
        const units = (tsresol & 0x80) !== 0 ? 2 ** (tsresol & 0x7f) : 10 ** tsresol;
        const hi = units < 2048 ? hi0 >>> 12 : hi0; // keep whole seconds below 2^53
        const path = file(new NgBuilder().shb().idb(1, 0, { tsresol, tsoffset: offset }).epb(0, hi, lo, payload(20)).build(), 'ts.pcapng');
        const [p] = PcapReader.readAllFromFile(path);
        expect([p.sec, p.nsec]).toEqual(refTs(hi, lo, tsresol, offset));
      },
    ), { numRuns: 400 });
  });

  it.skipIf(!tshark)('agree with tshark for the resolutions tshark computes without overflow', () => {
    const b = new NgBuilder().shb();
    const cases: Array<[number, number, number]> = [];
    const res = [0, 1, 3, 6, 7, 9, 0x80, 0x81, 0x8a, 0x94, 0x9e, 0xa0];
    res.forEach((r, i) => b.idb(1, 0, { tsresol: r, tsoffset: BigInt(i * 1000 - 3000) }));
    res.forEach((r, i) => {
      for (const [hi, lo] of [[0, 123456789], [1, 0xffffffff], [0x1234, 0x89abcdef], [0x5f, 0x10203040]]) {
        const units = (r & 0x80) !== 0 ? 2 ** (r & 0x7f) : 10 ** r;
        if (hi * 2 ** 32 / units > 2 ** 40) continue; // beyond any calendar tshark prints
        b.epb(i, hi, lo, payload(14 + cases.length));
        cases.push([i, hi, lo]);
      }
    });
    const path = file(b.build(), 'ts-tshark.pcapng');
    const ours = PcapReader.readAllFromFile(path).map((p) => `${p.sec}.${String(p.nsec).padStart(9, '0')}`);
    expect(ours).toEqual(tsharkRead(path).map((p) => p.timeEpoch));
    expect(ours.length).toBe(cases.length);
  });

  it('classic pcap fractions of a second or more are carried into the seconds', () => {
    const path = file(pcapFile({}, [{ sec: 10, frac: 2500000, data: payload(20) }]));
    const [p] = PcapReader.readAllFromFile(path);
    expect([p.sec, p.nsec]).toEqual([12, 500000000]);
    const n = file(pcapFile({ nano: true, le: false }, [{ sec: 10, frac: 999999999, data: payload(20) }]));
    expect(PcapReader.readAllFromFile(n).map((q) => [q.sec, q.nsec])).toEqual([[10, 999999999]]);
  });
});

describe('format details', () => {
  it('pcap versions before 2.4 have caplen and len swapped as libpcap and Wireshark say', () => {
    const recs = [{ sec: 1, frac: 0, data: payload(40), incl: 60, wire: 40 }];
    // 2.2: always swapped (incl_len field holds orig_len)
    expect(PcapReader.readAllFromFile(file(pcapFile({ minor: 2 }, recs))).map((p) => [p.capLen, p.wireLen])).toEqual([[40, 60]]);
    // 2.3: swapped only when incl > orig
    expect(PcapReader.readAllFromFile(file(pcapFile({ minor: 3 }, recs))).map((p) => [p.capLen, p.wireLen])).toEqual([[40, 60]]);
    const ok = [{ sec: 1, frac: 0, data: payload(40), wire: 60 }];
    expect(PcapReader.readAllFromFile(file(pcapFile({ minor: 3 }, ok))).map((p) => [p.capLen, p.wireLen])).toEqual([[40, 60]]);
  });

  it('the link-type field keeps LINKTYPE in its low 16 bits and the FCS length in its top bits', () => {
    const r = PcapReader.open(file(pcapFile({ linkType: 0x04000000 | (2 << 28) | 1 }, [])));
    expect([r.linkType, r.interfaces[0].fcsLength]).toEqual([1, 4]);
    r.close();
  });

  it('skips custom, name resolution, statistics, decryption-secrets and unknown blocks, large or small', () => {
    const b = new NgBuilder().shb().idb(1, 0, { name: 'x' })
      .block(0x00000bad, Buffer.concat([Buffer.from([0, 0, 0x7e, 0xd9]), Buffer.from('copy me')]))
      .epb(0, 0, 1, payload(60))
      .block(0x40000bad, Buffer.concat([Buffer.from([0, 0, 0x7e, 0xd9]), Buffer.alloc(30000, 7)]))
      .block(4, Buffer.from([1, 0, 8, 0, 10, 0, 0, 1, 0x61, 0x62, 0x63, 0, 0, 0, 0, 0]))
      .block(5, Buffer.alloc(12))
      .block(10, Buffer.concat([Buffer.from('KSLT', 'latin1'), Buffer.from([4, 0, 0, 0]), Buffer.from('abcd')]))
      .block(0x80000001, Buffer.alloc(70000, 1))
      .epb(0, 0, 2, payload(61))
      .block(0x0000ffff, Buffer.alloc(0));
    const path = file(b.build());
    for (const chunkSize of [64, 1000, 1 << 20]) {
      expect(PcapReader.readAllFromFile(path, { chunkSize }).map((p) => p.capLen)).toEqual([60, 61]);
      const arena = Arena.create({ slotSize: 2048, slotCount: 4 });
      const r = PcapReader.open(path, { arena, chunkSize });
      expect(drain(r, arena, arena.burstVector(4), 4).map((p) => p.capLen)).toEqual([60, 61]);
      expect(r.eof).toBe(true);
      r.close();
    }
  });

  it('an obsolete Packet Block, SPB room and snaplen 0 (no limit) follow the spec', () => {
    const b = new NgBuilder().shb().idb(1, 0).pb(0, 0, 1_000_000, payload(33), 90)
      .spb(payload(50), 50) // snaplen 0: cap = len
      .spb(payload(20), 999); // room in the block limits the captured length
    const packets = PcapReader.readAllFromFile(file(b.build()));
    expect(packets.map((p) => [p.capLen, p.wireLen, p.sec])).toEqual([[33, 90, 1], [50, 50, 0], [20, 999, 0]]);
  });

  it.skipIf(!tshark)('the in-memory builders write files tshark reads the same way', () => {
    const b = new NgBuilder(false).shb(false).idb(1, 0, { name: 'be0', tsresol: 9 }).epb(0, 0x17, 0x12345678, payload(60))
      .shb(true).idb(101, 100, { tsresol: 0x88 }).pb(0, 1, 2, payload(28)).epb(0, 0, 77, payload(40), 80);
    const path = file(b.build(), 'builders.pcapng');
    const ours = PcapReader.readAllFromFile(path).map((p) => [p.capLen, p.wireLen, `${p.sec}.${String(p.nsec).padStart(9, '0')}`]);
    expect(ours).toEqual(tsharkRead(path).map((p) => [p.capLen, p.len, p.timeEpoch]));
    const pc = file(pcapFile({ le: false, nano: true }, [{ sec: 7, frac: 8, data: payload(50), wire: 70 }]), 'builders.pcap');
    expect(PcapReader.readAllFromFile(pc).map((p) => [p.capLen, p.wireLen, `${p.sec}.${String(p.nsec).padStart(9, '0')}`]))
      .toEqual(tsharkRead(pc).map((p) => [p.capLen, p.len, p.timeEpoch]));
  });

  it('reads from a pipe (not seekable), skipping large blocks by reading through them', async () => {
    const b = new NgBuilder().shb().idb(1, 0).epb(0, 0, 1, payload(60)).block(0x80000002, Buffer.alloc(50000, 9))
      .epb(0, 0, 2, payload(1514)).block(5, Buffer.alloc(12)).epb(0, 0, 3, payload(9000));
    const src = file(b.build());
    const fifo = join(dir, `fifo${counter++}`);
    execFileSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', src, fifo], { stdio: 'ignore' });
    const exited = new Promise((resolve) => writer.on('exit', resolve));
    const packets = PcapReader.readAllFromFile(fifo, { chunkSize: 256 });
    await exited;
    expect(packets.map((p) => p.capLen)).toEqual([60, 1514, 9000]);
    expect(packets).toEqual(PcapReader.readAllFromFile(src));
  });

  it('classic pcap and ifIndex: every packet of a pcap file is on interface 0', () => {
    expect(PcapReader.readAllFromFile(fixturePath('rawip-usec.pcap')).every((p) => p.ifIndex === 0)).toBe(true);
  });
});

describe('damaged files raise EPCAP naming the problem and the byte offset', () => {
  const good = (): Buffer => readFileSync(fixturePath('small.pcap'));
  const cases: Array<[string, () => Buffer, RegExp]> = [
    ['an empty file', () => Buffer.alloc(0), /^EPCAP: file is too short for a capture file header \(0 bytes\) at byte 0 of /],
    ['an unknown magic number', () => Buffer.from('GIF89a..........................'), /unknown magic number 0x47494638: not a pcap or pcapng file at byte 0 of /],
    ['a truncated pcap file header', () => good().subarray(0, 10), /truncated pcap file header \(10 of 24 bytes\) at byte 0 of /],
    ['pcap version 1.0', () => pcapFile({ major: 1, minor: 0 }, []), /unsupported pcap version 1\.0 at byte 4 of /],
    ['a truncated record header', () => good().subarray(0, 24 + 10), /truncated record header \(10 of 16 bytes\) at byte 24 of /],
    ['a truncated record', () => good().subarray(0, 24 + 16 + 20), /truncated record data \(20 of 54 bytes\) at byte 40 of /],
    ['a captured length over 262144', () => pcapFile({}, [{ sec: 0, frac: 0, data: payload(4), incl: 262145 }]),
      /record captured length 262145 is larger than the maximum 262144 at byte 32 of /],
    ['a pcapng file cut inside its section header', () => new NgBuilder().shb().build().subarray(0, 20),
      /truncated section header block \(20 of 28 bytes\) at byte 0 of /],
    ['a bad byte-order magic', () => new NgBuilder().shb(true, { bom: 0x12345678 }).build(),
      /unknown byte-order magic 0x78563412 at byte 8 of /],
    ['pcapng version 2.0', () => new NgBuilder().shb(true, { major: 2 }).build(), /unsupported pcapng version 2\.0 \(1\.0 and 1\.2 are read\) at byte 12 of /],
    ['a block length that is not a multiple of 4', () => new NgBuilder().shb().idb(1, 0).block(6, Buffer.alloc(40), 50).build(),
      /block total length 50 is not a multiple of 4 at byte 52 of /],
    ['a block length below 12', () => new NgBuilder().shb().block(5, Buffer.alloc(0), 8).build(), /block total length 8 is smaller than the minimum 12 at byte 32 of /],
    ['a block length beyond the maximum', () => new NgBuilder().shb().block(5, Buffer.alloc(0), 0xfffffff0).build(),
      /block total length 4294967280 is larger than the maximum \d+ at byte 32 of /],
    ['a trailing length that does not match', () => new NgBuilder().shb().idb(1, 0).block(5, Buffer.alloc(12), undefined, 28).build(),
      /block trailing length 28 does not match its leading length 24 at byte 68 of /],
    ['an EPB naming an undeclared interface', () => new NgBuilder().shb().idb(1, 0).epb(1, 0, 0, payload(10)).build(),
      /enhanced packet block names interface 1, but its section declares 1 interface\(s\) at byte 56 of /],
    ['an EPB whose data overruns its block', () => new NgBuilder().shb().idb(1, 0).epb(0, 0, 0, payload(10), 10, 100).build(),
      /enhanced packet block captured length 100 does not fit in its total length 44 at byte 68 of /],
    ['an EPB longer than 262144 bytes', () => new NgBuilder().shb().idb(1, 0).epb(0, 0, 0, payload(262148)).build(),
      /enhanced packet block captured length 262148 is larger than the maximum 262144 at byte 68 of /],
    ['an SPB before any IDB', () => new NgBuilder().shb().spb(payload(10)).build(), /simple packet block before any interface description block in its section at byte 28 of /],
    ['a truncated EPB', () => new NgBuilder().shb().idb(1, 0).epb(0, 0, 0, payload(100)).build().subarray(0, 120),
      /truncated enhanced packet block \(72 of 132 bytes\) at byte 48 of /],
    ['a file ending inside a skipped block', () => new NgBuilder().shb().idb(1, 0).block(0x80000001, Buffer.alloc(5000)).build().subarray(0, 3000),
      /truncated block \(file ends inside a block of 5012 bytes\) at byte 48 of /],
    ['an IDB option running past its block', () => new NgBuilder().shb().idb(1, 0, { extra: Buffer.from([2, 0, 200, 0, 0x61, 0x61, 0x61, 0x61]) }).build(),
      /interface description block option 2 of 200 bytes runs past the end of the block at byte 44 of /],
    ['if_tsresol 2^-64', () => new NgBuilder().shb().idb(1, 0, { tsresol: 0x80 | 64 }).build(), /if_tsresol 2\^-64 is finer than 2\^-63 at byte 28 of /],
    ['if_tsresol 10^-20', () => new NgBuilder().shb().idb(1, 0, { tsresol: 20 }).build(), /if_tsresol 10\^-20 is finer than 10\^-19 at byte 28 of /],
  ];
  for (const [what, make, message] of cases) {
    it(what, () => {
      const path = file(make());
      const err = thrown(() => {
        const r = PcapReader.open(path);
        try {
          for (const _ of r.packets()) { /* read to the end */ }
        } finally {
          r.close();
        }
      });
      expect(err.code).toBe('EPCAP');
      expect(err.message).toMatch(message);
      expect(err.message).toContain(path);
    });
  }

  it('a captured length above the snaplen is read whole, as tshark does; a large snaplen does not lift the 262144 limit', () => {
    // (libpcap instead cuts such a record to the snaplen; both reject 300000 bytes under snaplen 1 MiB.)
    const over = file(pcapFile({ snaplen: 100 }, [{ sec: 1, frac: 0, data: payload(1000) }]));
    expect(PcapReader.readAllFromFile(over).map((p) => p.capLen)).toEqual([1000]);
    const big = file(pcapFile({ snaplen: 1 << 20 }, [{ sec: 1, frac: 0, data: payload(300000) }]));
    expect(thrown(() => PcapReader.readAllFromFile(big)).message).toMatch(/captured length 300000 is larger than the maximum 262144 at byte 32 /);
  });

  it('a captured length over 262144 is fine for USBPcap (Wireshark allows 128 MiB there)', () => {
    const path = file(pcapFile({ linkType: 249, snaplen: 1 << 20 }, [{ sec: 0, frac: 0, data: payload(300000) }]));
    expect(PcapReader.readAllFromFile(path).map((p) => p.capLen)).toEqual([300000]);
  });

  it('a file cut exactly at a record boundary is just shorter', () => {
    const b = good();
    expect(PcapReader.readAllFromFile(file(b.subarray(0, 24 + 16 + 54))).length).toBe(1);
    expect(PcapReader.readAllFromFile(file(b.subarray(0, 24))).length).toBe(0);
  });

  it('delivers the packets before the damage first, then fails on every later call', () => {
    const b = Buffer.concat([good(), Buffer.from([1, 2, 3, 4, 5])]);
    const arena = Arena.create({ slotSize: 2048, slotCount: 16 });
    const vec = arena.burstVector(16);
    const r = PcapReader.open(file(b), { arena });
    expect(r.readBurst(vec, 16)).toBe(4);
    arena.freeBurst(vec, 4);
    const first = thrown(() => r.readBurst(vec, 16));
    expect(first.message).toContain(`truncated record header (5 of 16 bytes) at byte ${good().length} of `);
    expect(thrown(() => r.readBurst(vec, 16))).toBe(first);
    expect(thrown(() => r.next())).toBe(first);
    expect(r.eof).toBe(false);
    expect(arena.stats.inUse).toBe(0);
    r.close();
  });

  it('misuse is EINVAL and a missing file is ENOENT', () => {
    const r = PcapReader.open(fixturePath('small.pcap'));
    expect(thrown(() => r.readBurst(new Uint32Array(4), 4)).code).toBe('EINVAL');
    r.close();
    r.close();
    expect(thrown(() => r.next()).code).toBe('EINVAL');
    expect(thrown(() => PcapReader.open(join(dir, 'missing.pcap'))).code).toBe('ENOENT');
    expect(thrown(() => PcapReader.open(fixturePath('small.pcap'), { chunkSize: 3 })).code).toBe('EINVAL');
  });
});
