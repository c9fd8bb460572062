// PcapReader as an async iterable of bursts (contract C7): `for await (const batch of
// reader)` gives every packet of the file once, in order, in reused PacketBatch
// cursors over slots that the next iteration frees; ending the loop in any way frees
// the batch held and closes the reader; an arena with no slot left is ENOSLOT (not a
// silent early end); an AbortSignal ends it with Node's AbortError; `await using`
// closes it.
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Arena } from '../bindings/arena.js';
import { PcapReader } from '../bindings/pcap/reader.js';
import { NetpdError } from '../bindings/errors.js';
import type { Packet, PacketBatch } from '../bindings/packet.js';

const SAMPLE = join(import.meta.dirname, '..', 'samples', 'sample.pcap');
const reference = PcapReader.readAllFromFile(SAMPLE);

/** The bytes of a packet in a slot, copied. */
const bytesOf = (p: Packet) => Buffer.from(p.data).toString('hex');

describe('for await over a PcapReader', () => {
  it('yields every packet once, in order, with its bytes and lengths, and frees every slot', async () => {
    const arena = Arena.create({ slotSize: 16384, slotCount: 512 });
    const reader = PcapReader.open(SAMPLE, { arena, burstSize: 64 });
    const got: string[] = [];
    const wire: number[] = [];
    let first: PacketBatch | undefined;
    let batches = 0;
    for await (const batch of reader) {
      first ??= batch;
      expect(batch).toBe(first); // one reused cursor, no allocation per burst
      expect(batch.length).toBeLessThanOrEqual(64);
      expect(arena.stats.inUse).toBe(batch.length);
      for (const p of batch) {
        got.push(bytesOf(p));
        wire.push(p.wireLength);
      }
      batches++;
    }
    expect(got).toEqual(reference.map((r) => Buffer.from(r.data).toString('hex')));
    expect(wire).toEqual(reference.map((r) => r.wireLen));
    expect(batches).toBe(Math.ceil(reference.length / 64));
    expect(arena.stats.inUse).toBe(0);
    expect(() => reader.next()).toThrow(); // closed at the end, as a stream is
  });

  it('frees the batch it holds and closes the reader when the loop breaks', async () => {
    const arena = Arena.create({ slotSize: 16384, slotCount: 512 });
    const reader = PcapReader.open(SAMPLE, { arena });
    let seen = 0;
    for await (const batch of reader) {
      seen += batch.length;
      expect(arena.stats.inUse).toBe(batch.length);
      break;
    }
    expect(seen).toBe(Math.min(256, reference.length));
    expect(arena.stats.inUse).toBe(0);
    expect(() => reader.next()).toThrow();
  });

  it('keeps retained packets past their batch, and says ENOSLOT when retained packets fill the arena', async () => {
    const arena = Arena.create({ slotSize: 16384, slotCount: 100 });
    const kept: Packet[] = [];
    let err: unknown;
    try {
      for await (const batch of PcapReader.open(SAMPLE, { arena, burstSize: 32 })) {
        for (const p of batch) kept.push(p.retain());
      }
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetpdError);
    expect((err as NetpdError).code).toBe('ENOSLOT');
    expect((err as NetpdError).message).toMatch(/sample\.pcap \(packet 101\).*release\(\)/);
    expect(kept).toHaveLength(100);
    kept.forEach((p, i) => expect(bytesOf(p)).toBe(Buffer.from(reference[i].data).toString('hex')));
    expect(arena.stats.inUse).toBe(100);
    for (const p of kept) p.release();
    expect(arena.stats.inUse).toBe(0);
  });

  it('rejects with AbortError once the signal is aborted, freeing what it held', async () => {
    const arena = Arena.create({ slotSize: 16384, slotCount: 512 });
    const controller = new AbortController();
    const reason = new Error('enough');
    let n = 0;
    let err: unknown;
    try {
      for await (const batch of PcapReader.open(SAMPLE, { arena, burstSize: 1, signal: controller.signal })) {
        n += batch.length;
        if (n === 3) setTimeout(() => controller.abort(reason), 0);
      }
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: reason });
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThan(reference.length);
    expect(arena.stats.inUse).toBe(0);
    // An already aborted signal: the first next() rejects, nothing is read.
    const reader = PcapReader.open(SAMPLE, { arena });
    await expect(reader.bursts({ signal: AbortSignal.abort() }).next()).rejects.toMatchObject({ name: 'AbortError' });
    expect(reader.packetsRead).toBe(0);
  });

  it('delivers the packets before damage, then EPCAP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netpd-api-reader-'));
    const cut = join(dir, 'cut.pcap');
    writeFileSync(cut, readFileSync(SAMPLE).subarray(0, 100_000));
    const arena = Arena.create({ slotSize: 16384, slotCount: 512 });
    let n = 0;
    let err: unknown;
    try {
      for await (const batch of PcapReader.open(cut, { arena })) n += batch.length;
    } catch (e) {
      err = e;
    }
    expect((err as NetpdError).code).toBe('EPCAP');
    // Whole records in the first 100,000 bytes: 24-byte file header, 16 bytes a record.
    let whole = 0;
    for (let at = 24; whole < reference.length && at + 16 + reference[whole].capLen <= 100_000; whole++) at += 16 + reference[whole].capLen;
    expect(n).toBe(whole);
    expect(arena.stats.inUse).toBe(0);
  });

  it('needs an arena (EINVAL naming the file), and `await using` closes the reader', async () => {
    const bare = PcapReader.open(SAMPLE);
    await expect(bare.bursts().next()).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('sample.pcap') });
    let outer: PcapReader;
    {
      await using reader = PcapReader.open(SAMPLE);
      outer = reader;
      expect(reader.next()).not.toBeNull();
    }
    expect(() => outer.next()).toThrow();
  });
});
