// netpd's benchmarks, each beside its peer in the same run and table:
//   arena burst alloc/free and ring burst enqueue/dequeue (slots/s) at bursts 1..256;
//   classic BPF, interpreted and compiled to WebAssembly, on the bundled sample, 1 and 10 filters, against
//   libpcap's own bpf_filter() running the same -ddd programs over the same packets
//   (bench/native/bpfrun.c, built with gcc when libpcap-dev is present).
// Usage: npm run bench [-- --json] [-- --quick]
import { Bench } from 'tinybench';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { Arena, Ring, PacketDispatcher, BpfFilter, PcapReader, parseDdd, compileFilter } from '../dist/index.js';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const TIME = quick ? 150 : 600;
const BURSTS = [1, 8, 32, 64, 256];
const rows = [];
const fmt = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(1)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0));

async function runBench(tasks) {
  const bench = new Bench({ time: TIME, warmupTime: 100 });
  for (const [name, fn] of tasks) bench.add(name, fn);
  await bench.run();
  return bench.tasks.map((t) => ({ name: t.name, hz: t.result.throughput?.mean ?? t.result.hz }));
}

// --- arena and rings -------------------------------------------------------
{
  const arena = Arena.create({ slotSize: 2048, slotCount: 65536 });
  const vec = arena.burstVector(256);
  const spsc = new Ring(arena, 1024, { singleProducer: true, singleConsumer: true });
  const mpmc = new Ring(arena, 1024);
  // Peers a Node program would otherwise use: a JS array as a queue, and a ring over a
  // plain Uint32Array written in JavaScript.
  const jsQueue = [];
  const jsRing = { buf: new Uint32Array(1024), head: 0, tail: 0 };
  const jsEnqueue = (src, n) => { let i = 0; for (; i < n && jsRing.head - jsRing.tail < 1024; i++) jsRing.buf[jsRing.head++ & 1023] = src[i]; return i; };
  const jsDequeue = (dst, n) => { let i = 0; for (; i < n && jsRing.tail < jsRing.head; i++) dst[i] = jsRing.buf[jsRing.tail++ & 1023]; return i; };
  const tasks = [];
  for (const b of BURSTS) {
    tasks.push([`peer: JS array push+shift burst ${b}`, () => { for (let i = 0; i < b; i++) jsQueue.push(vec[i]); for (let i = 0; i < b; i++) jsQueue.shift(); }]);
    tasks.push([`peer: JS Uint32Array ring burst ${b}`, () => { jsEnqueue(vec, b); jsDequeue(vec, b); }]);
    tasks.push([`arena alloc+free burst ${b}`, () => { arena.allocBurst(vec, b); arena.freeBurst(vec, b); }]);
    tasks.push([`ring SP/SC enqueue+dequeue burst ${b}`, () => { spsc.enqueueBurst(vec, b); spsc.dequeueBurst(vec, b); }]);
    tasks.push([`ring MP/MC enqueue+dequeue burst ${b}`, () => { mpmc.enqueueBurst(vec, b); mpmc.dequeueBurst(vec, b); }]);
  }
  for (const r of await runBench(tasks)) {
    const b = Number(r.name.split(' ').pop());
    rows.push({ group: 'arena/ring', name: r.name, unit: 'slots/s', value: r.hz * b });
  }
}

// --- classic BPF: netpd vs libpcap ----------------------------------------
const sample = here('../samples/sample.pcap');
const sets = { '1 filter': here('./programs/one'), '10 filters': here('./programs/ten') };
const native = here('./native/bin/bpfrun');
let nativeNote = '';
if (!existsSync(native)) {
  try {
    execFileSync('sh', [here('./native/build.sh')], { stdio: 'ignore' });
  } catch {
    nativeNote = 'libpcap harness not built (needs gcc and libpcap-dev)';
  }
}
{
  const arena = Arena.create({ slotSize: 2048, slotCount: 8192 });
  const reader = PcapReader.open(sample, { arena });
  const all = arena.burstVector(8192);
  const n = reader.readBurst(all, 8192);
  reader.close();
  const out = arena.burstVector(256);
  for (const [label, dir] of Object.entries(sets)) {
    const files = readdirSync(dir).filter((f) => f.endsWith('.ddd')).sort().map((f) => `${dir}/${f}`);
    const programs = files.map((f) => parseDdd(readFileSync(f, 'utf8')));
    // Through the dispatcher (classify every burst, one owner per program), interpreted
    // and compiled to WebAssembly; and a single program run over bursts, both ways.
    const dispatchers = [];
    for (const jit of [false, true]) {
      const pd = PacketDispatcher.create({ arena, defaultNetio: { pushBatch() {} }, burstSize: 256, jit });
      programs.forEach((p, i) => pd.register(p, { pushBatch() {} }, { name: `r${i}` }));
      await pd.jitReady();
      dispatchers.push([jit ? 'compiled' : 'interpreted', pd]);
    }
    const bursts = [];
    for (let i = 0; i < n; i += 256) bursts.push(all.subarray(i, Math.min(n, i + 256)));
    const tasks = dispatchers.map(([how, pd]) => [`netpd dispatcher (${how}), ${label}`, () => { for (const b of bursts) pd.dispatchBurst(b, b.length); }]);
    if (programs.length === 1) {
      for (const jit of [false, true]) {
        const single = new BpfFilter(arena, programs[0], { jit });
        tasks.push([`netpd BpfFilter.run (${jit ? 'compiled' : 'interpreted'}), ${label}`, () => { for (const b of bursts) single.run(b, b.length, out); }]);
      }
    }
    for (const r of await runBench(tasks)) rows.push({ group: `bpf ${label}`, name: r.name, unit: 'packets/s', value: r.hz * n });
    if (!nativeNote) {
      const res = JSON.parse(execFileSync(native, ['bench', ...files, sample, '--seconds', quick ? '0.3' : '1.5'], { encoding: 'utf8' }).trim().split('\n').pop());
      rows.push({ group: `bpf ${label}`, name: `libpcap bpf_filter (C, gcc -O2), ${label}`, unit: 'packets/s', value: res.pps });
    }
  }
}

// --- the pcap-filter compiler: netpd's compileFilter vs libpcap's pcap_compile ----
const typical = ['tcp port 80', 'udp port 53', 'arp[6:2] = 2', 'host 10.0.0.1 and (udp port 53 or tcp port 443)',
  'vlan 100 and tcp[tcpflags] & tcp-syn != 0', 'net 192.168.0.0/16 and not port 22', 'icmp[icmptype] = icmp-echo', 'ip6 net 2001:db8::/32'];
{
  const tasks = typical.map((e) => [`netpd compileFilter "${e}"`, () => compileFilter(e)]);
  const ours = await runBench(tasks);
  const compilebench = here('./native/bin/compilebench');
  const peer = existsSync(compilebench)
    ? execFileSync(compilebench, [quick ? '0.5' : '2', ...typical], { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l))
    : [];
  typical.forEach((e, i) => {
    rows.push({ group: 'compile', name: `netpd compileFilter "${e}" (${compileFilter(e).length} insns)`, unit: 'µs/compile', value: 1e6 / ours[i].hz });
    if (peer[i]) rows.push({ group: 'compile', name: `libpcap pcap_compile "${e}" (${peer[i].instructions} insns)`, unit: 'µs/compile', value: peer[i].usPerCompile });
  });
  // Program size over the whole filter corpus, optimized, netpd vs libpcap.
  const corpus = JSON.parse(readFileSync(here('../test/fixtures/filter/libpcap.json'), 'utf8'));
  let oursTotal = 0;
  let theirsTotal = 0;
  for (const c of corpus.cases) {
    if (!c.optimized) continue;
    let p;
    try { p = compileFilter(c.expr); } catch { continue; }
    oursTotal += p.length;
    theirsTotal += Number(c.ddd.split('\n')[0]);
  }
  rows.push({ group: 'compile', name: 'corpus program size, netpd optimizer (instructions, all expressions netpd compiles)', unit: 'insns', value: oursTotal });
  rows.push({ group: 'compile', name: 'corpus program size, libpcap optimizer (same expressions)', unit: 'insns', value: theirsTotal });
}

const machine = `${os.cpus()[0].model.trim()} (${os.cpus().length} cores), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.type()} ${os.release()}`;
if (json) {
  process.stdout.write(`${JSON.stringify({ machine, rows, note: nativeNote || undefined })}\n`);
} else {
  console.log(`machine: ${machine}`);
  if (nativeNote) console.log(`note: ${nativeNote}`);
  console.log('| benchmark | rate |\n|---|---:|');
  for (const r of rows) console.log(`| ${r.name} | ${r.unit === 'µs/compile' ? r.value.toFixed(2) : r.unit === 'insns' ? r.value : fmt(r.value)} ${r.unit} |`);
}
