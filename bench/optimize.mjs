// The classic-BPF optimizer on its own (bindings/filter/optimize.ts), beside libpcap's.
//   - every reference expression (test/fixtures/bpf/libpcap.json): optimizeProgram on
//     tcpdump -O's program, per-program time (median, p90, max), the first call of
//     the process (cold), and the size of the result against libpcap's;
//   - typical and large filters, one row each, with the peer: libpcap's optimizer,
//     timed as pcap_compile with the optimizer minus pcap_compile without it
//     (bench/native/bin/compilebench, built by bench/native/build.sh; large
//     filters need netpd's compiler for their unoptimized program).
// Usage: npm run build:ts && node bench/optimize.mjs [--json] [--quick]
import { Bench } from 'tinybench';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { parseDdd } from '../dist/bpf.js';
import { optimizeProgram } from '../dist/filter/optimize.js';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const rows = [];

const corpus = JSON.parse(readFileSync(here('../test/fixtures/bpf/libpcap.json'), 'utf8'));
const backward = (ddd) => ddd.trim().split('\n').slice(1).some((l) => { const [c, , , k] = l.split(' ').map(Number); return c === 5 && k >= 0x80000000; });
const byExpr = new Map();
for (const c of corpus.cases) {
  const e = byExpr.get(c.expr) ?? {};
  e[c.optimized ? 'opt' : 'unopt'] = c;
  byExpr.set(c.expr, e);
}
const programs = [...byExpr.entries()]
  .filter(([, v]) => v.opt && v.unopt && !backward(v.unopt.ddd))
  .map(([expr, v]) => ({ expr, input: parseDdd(v.unopt.ddd), libpcap: Number(v.opt.ddd.split('\n')[0]) }));

// --- the whole corpus --------------------------------------------------------
{
  let t0 = performance.now();
  optimizeProgram(programs[0].input);
  const cold = performance.now() - t0;
  const times = programs.map(() => 0);
  let rounds = 0;
  const budget = quick ? 500 : 3000;
  t0 = performance.now();
  while (performance.now() - t0 < budget || rounds < 3) {
    programs.forEach((p, i) => {
      const s = performance.now();
      optimizeProgram(p.input);
      times[i] += performance.now() - s;
    });
    rounds++;
  }
  const per = times.map((t) => (t / rounds) * 1000).sort((a, b) => a - b);
  const at = (q) => per[Math.min(per.length - 1, Math.floor(q * per.length))];
  const ours = programs.reduce((n, p) => n + optimizeProgram(p.input).length, 0);
  const theirs = programs.reduce((n, p) => n + p.libpcap, 0);
  rows.push({ group: 'corpus', name: `first call in the process (cold), "${programs[0].expr}"`, unit: 'µs', value: cold * 1000 });
  rows.push({ group: 'corpus', name: `${programs.length} reference expressions: median per program`, unit: 'µs', value: at(0.5) });
  rows.push({ group: 'corpus', name: `${programs.length} reference expressions: 90th percentile`, unit: 'µs', value: at(0.9) });
  rows.push({ group: 'corpus', name: `${programs.length} reference expressions: slowest`, unit: 'µs', value: per[per.length - 1] });
  rows.push({ group: 'corpus', name: `instructions after optimizing, netpd (libpcap: ${theirs}, ratio ${(ours / theirs).toFixed(3)})`, unit: 'insns', value: ours });
}

// --- typical and large filters, beside libpcap ---------------------------------
const typical = ['tcp port 80', 'udp port 53', 'host 10.1.1.1 and not host 10.1.1.2', 'vlan and tcp port 80',
  'tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn', '(port 53 or port 5353) and (udp[10] & 0x80 != 0 or tcp)'];
const ports = (n) => Array.from({ length: n }, (_, i) => `port ${1000 + i}`).join(' or ');
const hosts = (n) => Array.from({ length: n }, (_, i) => `host 10.0.${i}.1`).join(' or ');
const large = [ports(20), hosts(40), ports(60)];
const cases = typical.filter((e) => byExpr.has(e)).map((e) => ({ expr: e, input: programs.find((p) => p.expr === e).input }));
let compileFilter = null;
try {
  ({ compileFilter } = await import('../dist/filter/compile.js'));
} catch {
  // netpd's compiler is not built: only the corpus' own programs are measured.
}
if (compileFilter) {
  for (const e of large) {
    try { cases.push({ expr: e, input: compileFilter(e, { optimize: false }) }); } catch { /* not compilable here */ }
  }
}
{
  const bench = new Bench({ time: quick ? 150 : 600, warmupTime: 100 });
  for (const c of cases) bench.add(c.expr, () => optimizeProgram(c.input));
  await bench.run();
  const compilebench = here('./native/bin/compilebench');
  let note = '';
  if (!existsSync(compilebench)) {
    try { execFileSync('sh', [here('./native/build.sh')], { stdio: 'ignore' }); } catch { note = 'libpcap harness not built (needs gcc and libpcap-dev)'; }
  }
  const peer = new Map();
  if (existsSync(compilebench)) {
    const exprs = cases.map((c) => c.expr);
    const run = (flags) => execFileSync(compilebench, [...flags, quick ? '0.3' : '1.5', ...exprs], { encoding: 'utf8' })
      .trim().split('\n').map((l) => JSON.parse(l));
    const withOpt = run([]), without = run(['-O']);
    withOpt.forEach((r, i) => peer.set(r.expr, { us: r.usPerCompile - without[i].usPerCompile, insns: r.instructions }));
  }
  bench.tasks.forEach((t, i) => {
    const c = cases[i];
    const label = c.expr.length > 60 ? `${c.expr.slice(0, 57)}...` : c.expr;
    const us = (t.result.latency?.mean ?? t.result.mean) * 1000;
    rows.push({ group: 'filters', name: `netpd optimizeProgram "${label}" (${c.input.length} → ${optimizeProgram(c.input).length} insns)`, unit: 'µs', value: us });
    const p = peer.get(c.expr);
    if (p) rows.push({ group: 'filters', name: `libpcap optimizer "${label}" (→ ${p.insns} insns; pcap_compile with minus without)`, unit: 'µs', value: p.us });
  });
  if (note) rows.push({ group: 'filters', name: note, unit: '', value: NaN });
}

const machine = `${os.cpus()[0].model.trim()} (${os.cpus().length} cores), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.type()} ${os.release()}`;
if (json) {
  process.stdout.write(`${JSON.stringify({ machine, rows })}\n`);
} else {
  console.log(`machine: ${machine}`);
  console.log('| benchmark | value |\n|---|---:|');
  for (const r of rows) console.log(`| ${r.name} | ${Number.isNaN(r.value) ? '' : r.unit === 'insns' ? r.value : r.value.toFixed(1)} ${r.unit} |`);
}
