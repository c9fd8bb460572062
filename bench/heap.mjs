// Shows that dispatch allocates nothing per packet: 10 million packets from the bundled
// sample go through a dispatcher with one push() owner (a callback per packet) and one
// pushBatch() owner, while V8's heap and garbage collections are watched.
// Usage: node --expose-gc bench/heap.mjs [packets]
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Arena, PacketDispatcher, PcapReader } from '../dist/index.js';

const total = Number(process.argv[2] ?? 10_000_000);
const gc = globalThis.gc ?? (() => { throw new Error('run with node --expose-gc'); });
const arena = Arena.create({ slotSize: 2048, slotCount: 8192 });
const reader = PcapReader.open(fileURLToPath(new URL('../samples/sample.pcap', import.meta.url)), { arena });
const all = arena.burstVector(8192);
const n = reader.readBurst(all, 8192);
reader.close();
const bursts = [];
for (let i = 0; i < n; i += 256) bursts.push(all.subarray(i, Math.min(n, i + 256)));

let bytesSeen = 0;
const pd = PacketDispatcher.create({ arena, defaultNetio: { pushBatch(b) { bytesSeen += b.length; } } });
// ARP requests (ethertype 0x0806, arp op 1), one callback per packet reading two fields.
pd.register([
  { code: 0x28, jt: 0, jf: 0, k: 12 }, { code: 0x15, jt: 0, jf: 3, k: 0x806 },
  { code: 0x28, jt: 0, jf: 0, k: 20 }, { code: 0x15, jt: 0, jf: 1, k: 1 },
  { code: 0x06, jt: 0, jf: 0, k: 65535 }, { code: 0x06, jt: 0, jf: 0, k: 0 },
], (p) => { bytesSeen += p.u16(20) + p.length; });
// IPv4, whole runs at once.
pd.register([
  { code: 0x28, jt: 0, jf: 0, k: 12 }, { code: 0x15, jt: 0, jf: 1, k: 0x800 },
  { code: 0x06, jt: 0, jf: 0, k: 65535 }, { code: 0x06, jt: 0, jf: 0, k: 0 },
], { pushBatch(b) { for (let i = 0; i < b.length; i++) bytesSeen += b.packet(i).wireLength; } });

const pass = () => { for (const b of bursts) pd.dispatchBurst(b, b.length); };
for (let i = 0; i < 50; i++) pass(); // warm up the JIT before measuring
gc();
let gcs = 0;
const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
obs.observe({ entryTypes: ['gc'] });
const before = process.memoryUsage().heapUsed;
const t0 = process.hrtime.bigint();
let done = 0;
const samples = [];
while (done < total) {
  pass();
  done += n;
  if (samples.length < 10 && done >= ((samples.length + 1) * total) / 10) samples.push(process.memoryUsage().heapUsed);
}
const ns = Number(process.hrtime.bigint() - t0);
await new Promise((r) => setImmediate(r));
obs.disconnect();
const after = process.memoryUsage().heapUsed;
console.log(JSON.stringify({
  packets: done,
  heapUsedBefore: before,
  heapUsedAfter: after,
  heapGrowthBytes: after - before,
  bytesPerPacket: (after - before) / done,
  heapSamples: samples,
  garbageCollections: gcs,
  mpps: done / ns * 1e3,
  checksum: bytesSeen,
}));
