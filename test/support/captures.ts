// Loads a whole reference capture into an arena for tests that run filters over it.
import { fileURLToPath } from 'node:url';
import type { Arena } from '../../bindings/arena.js';
import { PcapReader } from '../../bindings/pcap/index.js';

/** Reads every packet of test/fixtures/captures/NAME into slots; throws if it does not fit whole. */
export function loadCapture(arena: Arena, name: string, max: number): { vec: Uint32Array; n: number } {
  const path = fileURLToPath(new URL(`../fixtures/captures/${name}`, import.meta.url));
  const reader = PcapReader.open(path, { arena });
  const vec = arena.burstVector(max);
  let n = 0;
  for (let got = reader.readBurst(vec, max); got > 0; got = reader.readBurst(vec.subarray(n), max - n)) n += got;
  const whole = reader.eof;
  reader.close();
  if (!whole) throw new Error(`${name}: not read to the end (more than ${max} packets, or the arena ran out)`);
  if (arena.stats.truncated > 0) throw new Error(`${name}: packets longer than a slot`);
  return { vec, n };
}
