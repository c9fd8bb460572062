// Demultiplexing benchmarks, netpd beside libpcap's own bpf_filter on the same packets
// and the same rules, in one run:
//
//   owners    N 5-tuple owners (test/support/flows.mjs): netpd's DPF trie and BPF
//             dispatcher, compiled to WebAssembly and interpreted, against libpcap
//             compiling the same N expressions with pcap_compile and running them one
//             after another per packet until one accepts (bench/native/bpfrun.c);
//   scale     DPF cost per packet at 10, 1,000 and 100,000 owners, on the same packets
//             (10 connections' traffic) and on traffic spread over every owner
//             (descriptions given as atoms: compiling 100,000 expressions would
//             measure the compiler);
//   single    one filter, `tcp port 80` on the bundled sample: BpfFilter compiled and
//             interpreted, against libpcap's bpf_filter;
//   control   adding one owner under an existing hash node, and compiling the trie
//             of 1,000 owners to WebAssembly.
//
//   node bench/dispatch.mjs [--json] [--quick]
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Arena, BpfFilter, PacketDispatcher, PcapReader, compileFilter } from '../dist/index.js';
import { benchDispatch, parseRules } from '../dist/bench-dispatch.js';
import { makeFlows, fiveTuple } from '../test/support/flows.mjs';
import { writeFlows, writeTraffic } from '../scripts/make-flows.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const minTimeMs = quick ? 300 : 1500;
const log = (s) => { if (!json) console.log(s); };
const rows = [];
const dir = mkdtempSync(join(tmpdir(), 'netpd-dispatch-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const native = here('./native/bin/bpfrun');
if (!existsSync(native)) {
  try { execFileSync('sh', [here('./native/build.sh')], { stdio: 'ignore' }); } catch { /* reported below */ }
}
const libpcap = (rules, capture) => {
  if (!existsSync(native)) return null;
  const out = execFileSync(native, ['bench', '--rules', rules, capture, '--seconds', String(minTimeMs / 1000)], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop());
};

/** N flows, a rules file of their expressions, and a capture of their traffic (10% no owner's). */
const flowFiles = (dir, { flows, packets, seed }) =>
  writeFlows({ rules: join(dir, `flows-${flows}.rules`), capture: join(dir, `flows-${flows}.pcap`), flows, packets, seed });

// --- N 5-tuple owners ------------------------------------------------------------
const PACKETS = 20_000;
for (const n of quick ? [1000] : [100, 1000]) {
  const f = flowFiles(dir, { flows: n, packets: PACKETS, seed: n });
  const rules = parseRules(readFileSync(f.rules, 'utf8'));
  log(`${n} 5-tuple owners, ${PACKETS} packets (90% theirs, interleaved):`);
  const peer = libpcap(f.rules, f.capture);
  for (const [filterType, jit] of [['dpf', true], ['dpf', false], ['bpf', true], ['bpf', false]]) {
    const r = await benchDispatch({ file: f.capture, rules, filterType, jit, minTimeMs, minPasses: 3 });
    const name = `netpd ${filterType}${jit ? ' compiled' : ' interpreted'}`;
    rows.push({ group: `owners ${n}`, name, nsPerPacket: r.nsPerPacket, matched: r.matched, vsLibpcap: peer ? peer.nsPerPacket / r.nsPerPacket : null });
    log(`  ${name.padEnd(24)} ${r.nsPerPacket.toFixed(1).padStart(9)} ns/packet  ${peer ? `${(peer.nsPerPacket / r.nsPerPacket).toFixed(1)}x libpcap` : ''}  (matched ${r.matched}${jit && !r.jit ? ', NOT compiled' : ''})`);
  }
  if (peer) {
    rows.push({ group: `owners ${n}`, name: 'libpcap bpf_filter, first match', nsPerPacket: peer.nsPerPacket, matched: peer.accepted });
    log(`  ${'libpcap bpf_filter'.padEnd(24)} ${peer.nsPerPacket.toFixed(1).padStart(9)} ns/packet  (matched ${peer.accepted})`);
  } else {
    log('  libpcap harness not built (needs gcc and libpcap-dev)');
  }
}

// --- DPF at scale ----------------------------------------------------------------
/** A DPF dispatcher with one 5-tuple owner per flow, and the time its compiled code took to be ready. */
async function dpfOwners(flows, jit) {
  const arena = Arena.create({ slotSize: 2048, slotCount: 256 });
  const sink = { pushBatch() {} };
  const pd = PacketDispatcher.create({ arena, defaultNetio: sink, filterType: 'dpf', jit, maxOwners: Math.max(4096, flows.length + 16) });
  for (const flow of flows) pd.register(fiveTuple(flow), sink);
  const t = performance.now();
  await pd.jitReady();
  return { pd, sink, compileMs: performance.now() - t };
}

// The same packets (the traffic of 10 connections) with 10, 1,000 and 100,000 owners
// registered — the cost of demultiplexing as owners grow, which DPF keeps flat — and
// then traffic spread over every owner's flow, where each packet is another owner's
// and the tables no longer fit the cache.
log(`DPF as owners grow: the same ${PACKETS} packets of 10 connections, then traffic spread over all owners:`);
const scale = {};
const SIZES = [10, 1000, 100_000];
const sameTraffic = writeTraffic(join(dir, 'ten-flows.pcap'), makeFlows(10, 7), PACKETS, 7);
for (const spread of [false, true]) {
  for (const n of SIZES) {
    const flows = makeFlows(n, 7);
    const capture = spread ? writeTraffic(join(dir, `spread-${n}.pcap`), flows, PACKETS, 7) : sameTraffic;
    for (const jit of [true, false]) {
      const r = await benchDispatch({ file: capture, rules: flows.map((f, i) => ({ name: `#${i + 1}`, description: fiveTuple(f) })), filterType: 'dpf', jit, minTimeMs, minPasses: 5 });
      const ns = r.nsPerPacket;
      const name = `netpd dpf ${jit ? 'compiled' : 'interpreted'}`;
      const key = `${spread}/${name}`;
      scale[`${key}/${n}`] = ns;
      rows.push({ group: spread ? 'dpf scale, traffic over all owners' : 'dpf scale, same traffic', name, owners: n, nsPerPacket: ns, jitActive: r.jit });
      log(`  ${spread ? 'spread' : 'same  '} ${String(n).padStart(7)} owners  ${name.padEnd(22)} ${ns.toFixed(1).padStart(7)} ns/packet${n > 10 ? `  (${(ns / scale[`${key}/10`]).toFixed(2)}x the cost at 10)` : ''}`);
    }
  }
}

// --- one filter --------------------------------------------------------------------
{
  const sample = here('../samples/sample.pcap');
  const arena = Arena.create({ slotSize: 2048, slotCount: 4096 });
  const all = arena.burstVector(4096);
  const reader = PcapReader.open(sample, { arena });
  const n = reader.readBurst(all, 4096);
  reader.close();
  const out = arena.burstVector(256);
  const bursts = [];
  for (let i = 0; i < n; i += 256) bursts.push([all.subarray(i), Math.min(256, n - i)]);
  log(`one filter, "tcp port 80" over the bundled sample (${n} packets):`);
  const rulesFile = join(dir, 'one.rules');
  execFileSync('sh', ['-c', `echo 'tcp port 80' > '${rulesFile}'`]);
  const peer = libpcap(rulesFile, sample);
  for (const jit of [true, false]) {
    const f = new BpfFilter(arena, compileFilter('tcp port 80'), { jit });
    const times = [];
    let spent = 0;
    while (times.length < 20 || spent < minTimeMs * 1e6) {
      const t = process.hrtime.bigint();
      for (let p = 0; p < 20; p++) for (const [v, k] of bursts) f.run(v, k, out);
      const ns = Number(process.hrtime.bigint() - t);
      times.push(ns / (20 * n));
      spent += ns;
    }
    times.sort((a, b) => a - b);
    const ns = times[times.length >> 1];
    const name = `netpd BpfFilter ${jit ? 'compiled' : 'interpreted'}`;
    rows.push({ group: 'single filter', name, nsPerPacket: ns, vsLibpcap: peer ? peer.nsPerPacket / ns : null });
    log(`  ${name.padEnd(28)} ${ns.toFixed(2).padStart(7)} ns/packet  ${peer ? `${(peer.nsPerPacket / ns).toFixed(2)}x libpcap` : ''}`);
  }
  if (peer) {
    rows.push({ group: 'single filter', name: 'libpcap bpf_filter', nsPerPacket: peer.nsPerPacket });
    log(`  ${'libpcap bpf_filter'.padEnd(28)} ${peer.nsPerPacket.toFixed(2).padStart(7)} ns/packet`);
  }
}

// --- control plane -----------------------------------------------------------------
{
  const f = flowFiles(dir, { flows: 1001, packets: 10, seed: 99 });
  const { pd, sink } = await dpfOwners(f.flows.slice(0, 1000), true);
  const extra = fiveTuple(f.flows[1000]);
  const times = [];
  for (let i = 0; i < 2000; i++) {
    const t = process.hrtime.bigint();
    const id = pd.register(extra, sink);
    times.push(Number(process.hrtime.bigint() - t));
    pd.unregister(id);
  }
  times.sort((a, b) => a - b);
  const addUs = times[times.length >> 1] / 1e3;
  rows.push({ group: 'control', name: 'add one owner under an existing hash node (register a DPF description beside 1,000)', us: addUs, jitActive: pd.jitActive });
  log(`control plane: adding one 5-tuple owner beside 1,000: ${addUs.toFixed(2)} µs (median of 2,000; compiled code ${pd.jitActive ? 'kept' : 'not in use'})`);
  // A full recompile: 1,000 owners registered at once, then compiled (coalesced) to one module.
  const compiles = [];
  for (let i = 0; i < 9; i++) compiles.push((await dpfOwners(f.flows.slice(0, 1000), true)).compileMs);
  compiles.sort((a, b) => a - b);
  const compileMs = compiles[compiles.length >> 1];
  rows.push({ group: 'control', name: 'compile the DPF trie of 1,000 owners to WebAssembly (generate + WebAssembly.compile)', ms: compileMs });
  log(`control plane: compiling the trie of 1,000 owners: ${compileMs.toFixed(2)} ms (median of 9)`);
}

const machine = `${os.cpus()[0].model.trim()} (${os.cpus().length} cores), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.type()} ${os.release()}`;
if (json) process.stdout.write(`${JSON.stringify({ machine, rows })}\n`);
else log(`machine: ${machine}`);
