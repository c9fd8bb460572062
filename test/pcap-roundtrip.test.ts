// Round trips: capture -> arena -> PcapWriter -> file, checked by tshark (live, when
// installed) against tshark's reading of the original, by our own reader, and byte for
// byte against files libpcap and editcap wrote.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Arena, SLOT_TRUNCATED } from '../bindings/arena.js';
import { NetpdError } from '../bindings/errors.js';
import { PcapReader, PcapWriter, type PcapPacket } from '../bindings/pcap/index.js';
import { fixturePath, loadExpectation, tsharkRead, tsharkVersion, type ExpectedPacket } from './fixtures/pcap/expect.js';

const tshark = tsharkVersion();
if (!tshark) console.log('pcap-roundtrip: tshark is not installed; the live tshark checks of written files are skipped');

// Fixtures whose packets all share one link type (a classic pcap file has one).
const SINGLE_LINKTYPE = [
  'eth-usec-le.pcap', 'eth-usec-be.pcap', 'eth-nsec-le.pcap', 'eth-nsec-be.pcap', 'eth-editcap-nsec.pcap',
  'eth-snap96.pcap', 'rawip-usec.pcap', 'editcap-nsec.pcapng', 'spb.pcapng', 'tsoffset.pcapng', 'small.pcap',
];

let dir: string;
let arena: Arena;
let vec: Uint32Array;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'netpd-pcap-rt-'));
  arena = Arena.create({ slotSize: 16384, slotCount: 512 });
  vec = arena.burstVector(64);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Reads `src` through the arena and writes it with PcapWriter; returns the written path. */
function copyThroughArena(src: string, out: string, nanosecond: boolean, snaplen?: number, burst = 16): string {
  const reader = PcapReader.open(src, { arena });
  const writer = PcapWriter.create(out, { linkType: reader.linkType, nanosecond, ...(snaplen ? { snaplen } : {}) });
  try {
    for (;;) {
      const k = reader.readBurst(vec, burst);
      if (k === 0) break;
      expect(writer.writeBurst(arena, vec, k)).toBe(k);
      arena.freeBurst(vec, k);
    }
    expect(reader.eof).toBe(true);
  } finally {
    writer.close();
    reader.close();
  }
  return out;
}

/** tshark's view of a packet, minus what a classic pcap file cannot carry. */
function portable(p: ExpectedPacket, nanosecond: boolean): Omit<ExpectedPacket, 'section' | 'interfaceId' | 'interfaceName'> {
  let t = p.timeEpoch ?? '0.000000000';
  if (!nanosecond) t = `${t.slice(0, -3)}000`;
  return { number: p.number, timeEpoch: t, len: p.len, capLen: p.capLen, head: p.head, sha256: p.sha256 };
}

function needsNanoseconds(name: string): boolean {
  const r = PcapReader.open(fixturePath(name));
  const nano = r.interfaces.some((i) => i.tsresol > 1e6);
  r.close();
  return nano;
}

describe('capture -> arena -> PcapWriter', () => {
  for (const name of SINGLE_LINKTYPE) {
    const nano = needsNanoseconds(name);
    describe(`${name} (${nano ? 'nanosecond' : 'microsecond'} output)`, () => {
      let out: string;
      beforeAll(() => {
        out = copyThroughArena(fixturePath(name), join(dir, `${name}.out.pcap`), nano);
      });

      it('our reader reads back exactly the packets of the original', () => {
        const original = PcapReader.readAllFromFile(fixturePath(name));
        const back = PcapReader.readAllFromFile(out);
        const strip = (p: PcapPacket) => ({ ...p, ifIndex: 0, nsec: nano ? p.nsec : Math.floor(p.nsec / 1000) * 1000 });
        expect(back).toEqual(original.map(strip));
        expect(arena.stats.inUse).toBe(0);
      });

      it.skipIf(!tshark)('tshark reads the written file as it reads the original', () => {
        const expected = loadExpectation(name).packets.map((p) => portable(p, nano));
        const got = tsharkRead(out).map((p) => portable(p, true));
        expect(got).toEqual(expected);
      });
    });
  }
});

describe('PcapWriter output is byte-identical to other writers', () => {
  it('reproduces the file tcpdump (libpcap) wrote, byte for byte', () => {
    const out = copyThroughArena(fixturePath('eth-usec-le.pcap'), join(dir, 'libpcap-same.pcap'), false, 65535, 5);
    expect(readFileSync(out).equals(readFileSync(fixturePath('eth-usec-le.pcap')))).toBe(true);
  });

  it('reproduces tcpdump --time-stamp-precision=nano, byte for byte', () => {
    const out = copyThroughArena(fixturePath('eth-nsec-le.pcap'), join(dir, 'libpcap-nano.pcap'), true, 65535, 64);
    expect(readFileSync(out).equals(readFileSync(fixturePath('eth-nsec-le.pcap')))).toBe(true);
  });

  it('cuts packets to the snaplen exactly as editcap -s 96 does', () => {
    const out = copyThroughArena(fixturePath('eth-usec-le.pcap'), join(dir, 'snap96.pcap'), false, 96, 3);
    expect(readFileSync(out).equals(readFileSync(fixturePath('eth-snap96.pcap')))).toBe(true);
  });

  it('writePacket and writeBurst produce the same bytes, whatever the buffer size', () => {
    const packets = PcapReader.readAllFromFile(fixturePath('eth-nsec-be.pcap'));
    const a = join(dir, 'wp-default.pcap');
    const b = join(dir, 'wp-tiny.pcap');
    for (const [path, bufferSize] of [[a, undefined], [b, 64]] as const) {
      const w = PcapWriter.create(path, { nanosecond: true, snaplen: 65535, ...(bufferSize ? { bufferSize } : {}) });
      for (const p of packets) w.writePacket(p.data, { sec: p.sec, nsec: p.nsec, wireLen: p.wireLen });
      expect(w.packetsWritten).toBe(packets.length);
      w.close();
      w.close(); // idempotent
    }
    const viaArena = copyThroughArena(fixturePath('eth-nsec-be.pcap'), join(dir, 'wp-arena.pcap'), true, 65535);
    expect(readFileSync(a).equals(readFileSync(viaArena))).toBe(true);
    expect(readFileSync(b).equals(readFileSync(viaArena))).toBe(true);
    // and the big-endian original, rewritten in host order, is tcpdump's little-endian file
    expect(readFileSync(a).equals(readFileSync(fixturePath('eth-nsec-le.pcap')))).toBe(true);
  });
});

describe('PcapWriter edge cases', () => {
  it('writes what a truncated slot holds: slotSize bytes, the wire length kept', () => {
    const small = Arena.create({ slotSize: 1024, slotCount: 64 });
    const v = small.burstVector(64);
    const reader = PcapReader.open(fixturePath('eth-usec-le.pcap'), { arena: small });
    const out = join(dir, 'truncated-slots.pcap');
    const writer = PcapWriter.create(out);
    const k = reader.readBurst(v, 64);
    expect(k).toBe(30);
    writer.writeBurst(small, v, k);
    writer.close();
    reader.close();
    const wires: number[] = [];
    for (let i = 0; i < k; i++) {
      wires.push(small.wireLen(v[i]));
      expect((small.flags(v[i]) & SLOT_TRUNCATED) !== 0).toBe(small.wireLen(v[i]) > 1024);
    }
    small.freeBurst(v, k);
    const back = PcapReader.readAllFromFile(out);
    expect(back.map((p) => p.wireLen)).toEqual(wires);
    expect(back.map((p) => p.capLen)).toEqual(wires.map((w) => Math.min(w, 1024)));
  });

  it('refuses timestamps a pcap record cannot hold, naming the packet, and keeps what came before', () => {
    const out = join(dir, 'bad-ts.pcap');
    const w = PcapWriter.create(out);
    w.writePacket(new Uint8Array(60), { sec: 1, nsec: 0 });
    for (const info of [{ sec: -1, nsec: 0 }, { sec: 2 ** 32, nsec: 0 }, { sec: 1, nsec: 1e9 }, { sec: 1.5, nsec: 0 }, { sec: 1, nsec: 0, wireLen: -3 }]) {
      let err: unknown;
      try {
        w.writePacket(new Uint8Array(60), info);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NetpdError);
      expect((err as NetpdError).code).toBe('EINVAL');
    }
    w.close();
    expect(PcapReader.readAllFromFile(out)).toHaveLength(1);
    expect(() => w.writePacket(new Uint8Array(1), { sec: 0, nsec: 0 })).toThrow(/closed/);
  });

  it('rejects impossible options', () => {
    for (const opts of [{ linkType: -1 }, { linkType: 70000 }, { snaplen: 0 }, { bufferSize: 8 }]) {
      expect(() => PcapWriter.create(join(dir, 'never.pcap'), opts)).toThrow(NetpdError);
    }
    expect(() => PcapWriter.create(join(dir, 'no/such/dir/x.pcap'))).toThrow(/ENOENT/);
  });
});
