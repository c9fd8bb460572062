// A damaged capture (cut short, or a record with an impossible length): PcapReader
// delivers every record before the damage first — exactly the packets `tcpdump -r`
// prints before it complains — and the next call throws EPCAP with the byte offset
// (err.details.offset, and "at byte N" in the message). Cases: test/fixtures/damage/.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Arena } from '../bindings/arena.js';
import { NetpdError } from '../bindings/errors.js';
import { PcapReader } from '../bindings/pcap/index.js';
import { CASES, damaged, tcpdumpReads } from './fixtures/damage/damage.mjs';

interface TcpdumpRead { packets: number; complaint: string }
const reference = JSON.parse(readFileSync(new URL('./fixtures/damage/tcpdump.json', import.meta.url), 'utf8')) as { cases: Record<string, TcpdumpRead> };

let dir: string;
let arena: Arena;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'netpd-damage-'));
  arena = Arena.create({ slotSize: 2048, slotCount: 256 });
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Reads with readBurst until it throws: the packets delivered, the error, and the burst sizes. */
function readUntilDamage(path: string, burst: number): { delivered: number; bursts: number[]; error: unknown } {
  const vec = arena.burstVector(burst);
  let delivered = 0;
  const bursts: number[] = [];
  let reader: PcapReader | undefined;
  try {
    reader = PcapReader.open(path, { arena });
    for (;;) {
      const k = reader.readBurst(vec, burst);
      bursts.push(k);
      arena.freeBurst(vec, k);
      if (k === 0 && reader.eof) return { delivered, bursts, error: undefined };
      delivered += k;
    }
  } catch (error) {
    return { delivered, bursts, error };
  } finally {
    reader?.close();
  }
}

const tcpdumpHere = tcpdumpReads('/dev/null') !== null;
if (!tcpdumpHere) console.log('pcap-damage: tcpdump is not installed; counts are compared with test/fixtures/damage/tcpdump.json only');

describe('a damaged capture gives the packets before the damage, then EPCAP with the offset', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, () => {
      const path = join(dir, `${name.replace(/\W+/g, '-')}.pcap`);
      const bytes = damaged(c);
      writeFileSync(path, bytes);
      const want = reference.cases[name];
      expect(want, `${name} is in tcpdump.json (run make-fixtures.mjs)`).toBeDefined();
      if (tcpdumpHere) expect(tcpdumpReads(path), 'tcpdump today agrees with tcpdump.json').toEqual(want);
      for (const burst of [1, 32, 256]) {
        const { delivered, bursts, error } = readUntilDamage(path, burst);
        expect(delivered, `burst ${burst}: the packets tcpdump prints before "${want.complaint}"`).toBe(want.packets);
        expect(error).toBeInstanceOf(NetpdError);
        const err = error as NetpdError;
        expect(err.code).toBe('EPCAP');
        const offset = err.details.offset as number;
        expect(Number.isInteger(offset)).toBe(true);
        expect(offset).toBeGreaterThanOrEqual(0);
        expect(offset).toBeLessThanOrEqual(bytes.length);
        expect(err.message).toContain(`at byte ${offset} of ${path}`);
        // Nothing is held back: the call that threw was the one after the last packet.
        if (want.packets > 0) expect(bursts.reduce((a, b) => a + b, 0)).toBe(want.packets);
      }
    });
  }
});
