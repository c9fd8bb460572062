#!/usr/bin/env node
// The netpd command, with tcpdump's habits: -r FILE, -i IFACE, -c COUNT, -w FILE.
//
//   netpd run [-r FILE | -i IFACE [-w FILE] [EXPR]] [--rule NAME=DESC]... [--filter-type bpf|dpf] [--jit|--no-jit] [-c COUNT] [--json]
//   netpd send -i IFACE -r FILE [--pps N] [--loop N] [--tx-mode mmsg|ring] [--json]
//   netpd filter -r FILE (EXPR | --program FILE.ddd)
//   netpd compile [-d | -dd | -ddd] [-O0] EXPR
//   netpd bench dispatch -r FILE --rules-file RULES [--filter-type bpf|dpf] [--jit|--no-jit] [--time MS] [--json]
//
// `run` dispatches a capture (the bundled sample by default) or a live interface to
// one owner per rule and prints per-owner counters; it stops at -c, at the end of the
// file, or on SIGINT/SIGTERM, and always prints its final counters. `send` replays a
// capture's frames from the arena onto an interface. `bench dispatch` times a
// dispatcher over a user's own rules (bench-dispatch.ts).

import { parseArgs } from 'node:util';
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { relative } from 'node:path';
import cliProgress from 'cli-progress';
import { NetpdError } from './errors.js';
import { Arena } from './arena.js';
import { PacketDispatcher, type DispatcherStats, type FilterType } from './dispatcher.js';
import { BpfFilter, parseDdd } from './bpf.js';
import { compileFilter } from './filter/compile.js';
import { formatProgram } from './filter/format.js';
import { PcapReader, PcapWriter } from './pcap/index.js';
import { AfPacketSource } from './live/afpacket.js';
import { benchDispatch as runDispatchBench, parseRules, registerRules, type Rule } from './bench-dispatch.js';

const SAMPLE = fileURLToPath(new URL('../samples/sample.pcap', import.meta.url));
const SAMPLE_RULES = fileURLToPath(new URL('../samples/rules.json', import.meta.url));
const BURST = 256;

const USAGE = `usage:
  netpd run [-r FILE | -r -] [--rule NAME=EXPR]... [-c COUNT] [--json]
  netpd run -i IFACE [-w FILE] [--rule NAME=EXPR]... [-c COUNT] [--json] [EXPR]
  netpd send -i IFACE -r FILE [--pps N] [--loop N] [--tx-mode mmsg|ring] [--json]
  netpd filter -r FILE (EXPR | --program FILE.ddd)
  netpd compile [-d | -dd | -ddd] [-O0] EXPR
  netpd bench dispatch -r FILE --rules-file RULES [--filter-type bpf|dpf] [--jit|--no-jit] [--time MS] [--json]
run also takes --filter-type bpf|dpf (first match, or most specific match in a merged
trie) and --jit/--no-jit (compile the rules to WebAssembly; on by default).
EXPR is a pcap-filter expression (tcpdump's); NAME=@FILE.ddd takes a tcpdump -ddd program.
-r - reads standard input. Without -r and -i, run dispatches the bundled sample to its rules.
With -i, a trailing EXPR is run by the kernel, so what it rejects never reaches netpd.`;

/** What `run` and `bench dispatch` share: the filter type and whether to compile to WebAssembly. */
interface DispatchChoice {
  filterType: FilterType;
  jit: boolean;
}

const DISPATCH_OPTIONS = {
  'filter-type': { type: 'string' },
  jit: { type: 'boolean' },
  'no-jit': { type: 'boolean' },
} as const;

function dispatchChoice(values: { 'filter-type'?: string; jit?: boolean; 'no-jit'?: boolean }): DispatchChoice {
  const filterType = values['filter-type'] ?? 'bpf';
  if (filterType !== 'bpf' && filterType !== 'dpf') throw new NetpdError('EINVAL', `--filter-type takes bpf or dpf, got "${filterType}"`);
  if (values.jit && values['no-jit']) throw new NetpdError('EINVAL', 'give --jit or --no-jit, not both');
  return { filterType, jit: values['no-jit'] !== true };
}

/** A dispatcher whose owners only count (it keeps their counters), with the rules registered. */
function countingDispatcher(arena: Arena, rules: Rule[], choice: DispatchChoice): PacketDispatcher {
  const count = { pushBatch: () => {} };
  const pd = PacketDispatcher.create({ arena, defaultNetio: count, filterType: choice.filterType, jit: choice.jit, maxOwners: Math.max(4096, rules.length) });
  registerRules(pd, rules, count);
  return pd;
}

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  switch (verb) {
    case 'run':
      return run(rest);
    case 'filter':
      return filter(rest);
    case 'send':
      return send(rest);
    case 'compile':
      return compile(rest);
    case 'bench':
      if (rest[0] !== 'dispatch') throw new NetpdError('EINVAL', `bench takes "dispatch", got "${rest[0] ?? ''}"\n${USAGE}`);
      return benchDispatch(rest.slice(1));
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return verb === undefined ? 2 : 0;
    default:
      throw new NetpdError('EINVAL', `unknown command "${verb}"\n${USAGE}`);
  }
}

function parseRule(spec: string): Rule {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new NetpdError('EINVAL', `--rule takes NAME=EXPR, got "${spec}"`);
  const name = spec.slice(0, eq);
  const desc = spec.slice(eq + 1);
  return { name, description: desc.startsWith('@') ? parseDdd(readText(desc.slice(1))) : desc };
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new NetpdError('EIO', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
}

// The bundled sample's rules are expressions; netpd compiles them itself.
function sampleRules(): Rule[] {
  const rules = JSON.parse(readText(SAMPLE_RULES)) as { name: string; expr: string }[];
  return rules.map((r) => ({ name: r.name, description: r.expr }));
}

function count(value: string | undefined, flag: string, what = 'packet count'): number {
  if (value === undefined) return Infinity;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new NetpdError('EINVAL', `${flag} takes a positive ${what}, got "${value}"`);
  return Number(value);
}

/** Resolves on SIGINT or SIGTERM (the handlers are removed by the returned cleanup). */
function onStopSignal(stop: () => void): () => void {
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  };
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      read: { type: 'string', short: 'r' },
      interface: { type: 'string', short: 'i' },
      rule: { type: 'string', multiple: true },
      count: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      write: { type: 'string', short: 'w' },
      ...DISPATCH_OPTIONS,
    },
    allowPositionals: true,
    strict: true,
  });
  const limit = count(values.count, '-c');
  const choice = dispatchChoice(values);
  if (values.interface !== undefined) {
    if (values.read !== undefined) throw new NetpdError('EINVAL', 'give -r FILE or -i IFACE, not both');
    const rules = values.rule?.map(parseRule) ?? [];
    return runLive(values.interface, rules, choice, limit, values.write, positionals.join(' '), values.json === true);
  }
  if (positionals.length > 0) throw new NetpdError('EINVAL', `unexpected "${positionals.join(' ')}": a trailing filter expression is for live capture (-i); for files use --rule NAME=EXPR`);
  if (values.write !== undefined) throw new NetpdError('EINVAL', '-w writes a live capture; it needs -i IFACE');
  const file = values.read ?? SAMPLE;
  const rules = values.rule?.map(parseRule) ?? (values.read === undefined ? sampleRules() : []);
  const arena = Arena.create({ slotSize: 2048, slotCount: 8192 });
  const pd = countingDispatcher(arena, rules, choice);
  // A file is there already: let the compiled classifier be ready before the first burst.
  await pd.jitReady();
  const reader = openCapture(file, arena);
  const vec = arena.burstVector(BURST);
  let stop = false;
  const removeSignals = onStopSignal(() => { stop = true; });
  const bar = progressBar(file, values.json === true);
  let packets = 0;
  let bursts = 0;
  let firstTs = -1;
  let lastTs = -1;
  const started = process.hrtime.bigint();
  try {
    while (!stop && packets < limit) {
      const n = reader.readBurst(vec, Math.min(BURST, limit - packets));
      if (n === 0) break;
      if (firstTs < 0) firstTs = tsSeconds(arena, vec[0]);
      lastTs = tsSeconds(arena, vec[n - 1]);
      pd.dispatchBurst(vec, n);
      arena.freeBurst(vec, n);
      packets += n;
      // Every 64 bursts, update the progress bar and let signals in.
      if ((++bursts & 63) === 0) {
        bar?.update(reader.offset);
        await new Promise((r) => setImmediate(r));
      }
    }
  } finally {
    bar?.stop();
    reader.close();
    removeSignals();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const span = lastTs > firstTs ? lastTs - firstTs : 0;
  const report = pd.stats();
  if (values.json) process.stdout.write(`${JSON.stringify(jsonReport(report))}\n`);
  else process.stdout.write(table(`${displayName(file)}: ${report.in} packets over ${span.toFixed(3)} s of capture, dispatched in ${(seconds * 1000).toFixed(1)} ms`, report, arena, span));
  return 0;
}

// run -i IFACE: the same owners and report over a live interface. The trailing
// expression is the kernel's filter; -c stops after COUNT packets reached the owners.
async function runLive(iface: string, rules: Rule[], choice: DispatchChoice, limit: number, write: string | undefined, kernelFilter: string, json: boolean): Promise<number> {
  const arena = Arena.create({ slotSize: 2048, slotCount: 65536 });
  // Frames are dispatched from the start; the compiled classifier takes over when ready.
  const pd = countingDispatcher(arena, rules, choice);
  const writer = write === undefined ? undefined : PcapWriter.create(write, { nanosecond: true });
  let packets = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => { finish = resolve; });
  let failure: Error | undefined;
  const source = AfPacketSource.open(iface, {
    arena,
    filter: kernelFilter === '' ? undefined : kernelFilter,
    onBurst(vec, n) {
      const k = Math.min(n, limit - packets);
      if (k <= 0) return;
      pd.dispatchBurst(vec, k);
      writer?.writeBurst(arena, vec, k);
      packets += k;
      if (packets >= limit) finish();
    },
  });
  source.on('error', (err: Error) => { failure = err; finish(); });
  source.on('close', () => finish());
  const removeSignals = onStopSignal(() => finish());
  process.stderr.write(`listening on ${iface}${kernelFilter ? ` (kernel filter: ${kernelFilter})` : ''}, ${rules.length} rule${rules.length === 1 ? '' : 's'}\n`);
  const started = process.hrtime.bigint();
  try {
    await done;
  } finally {
    removeSignals();
    source.close();
    writer?.close();
  }
  if (failure) throw failure;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const live = source.stats();
  // Frames the kernel or the arena dropped came in too: every accepted frame is counted once.
  pd.countDrops('kernel', live.dropped.kernel);
  pd.countDrops('noslot', live.dropped.noslot);
  const report = pd.stats();
  if (json) process.stdout.write(`${JSON.stringify({ ...jsonReport(report), kernel: live.kernel })}\n`);
  else {
    const head = `${iface}: ${report.in} packets in ${seconds.toFixed(3)} s (kernel: ${live.kernel.packets} accepted by the filter, ${live.kernel.drops} dropped)${writer ? `, ${writer.packetsWritten} written to ${write}` : ''}`;
    process.stdout.write(table(head, report, arena, seconds));
  }
  return 0;
}

// send -i IFACE -r FILE: replays a capture's frames, in order, from the arena. A file
// that fits in half the arena is read once and resent from the same slots on every loop.
async function send(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      interface: { type: 'string', short: 'i' },
      read: { type: 'string', short: 'r' },
      pps: { type: 'string' },
      loop: { type: 'string' },
      'tx-mode': { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  const txMode = values['tx-mode'] ?? 'mmsg';
  if (txMode !== 'mmsg' && txMode !== 'ring') throw new NetpdError('EINVAL', `--tx-mode is mmsg or ring, got "${txMode}"`);
  if (!values.interface || !values.read) throw new NetpdError('EINVAL', `send needs -i IFACE and -r FILE\n${USAGE}`);
  const pps = values.pps === undefined ? 0 : count(values.pps, '--pps', 'rate in packets per second');
  const loops = values.loop === undefined ? 1 : count(values.loop, '--loop', 'number of passes');
  const arena = Arena.create({ slotSize: 16384, slotCount: 16384 });
  const source = AfPacketSource.open(values.interface, { arena, transmitOnly: true, txMode });
  const held = preload(values.read, arena);
  const vec = arena.burstVector(BURST);
  let stop = false;
  const removeSignals = onStopSignal(() => { stop = true; });
  let sent = 0;
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  // Pacing: a burst goes when the schedule (sent / pps seconds) allows it, in bursts of
  // at most 1 ms worth of packets, so the rate holds at any scale.
  const burstCap = pps > 0 ? Math.max(1, Math.min(BURST, Math.floor(pps / 1000))) : BURST;
  let bursts = 0;
  try {
    for (let pass = 0; pass < loops && !stop; pass++) {
      const reader = held ? undefined : PcapReader.open(values.read, { arena });
      try {
        for (let at = 0; !stop; ) {
          let n: number;
          if (held) {
            n = Math.min(burstCap, held.length - at);
            if (n <= 0) break;
            vec.set(held.subarray(at, at + n));
            arena.retainBurst(vec, n);
            at += n;
          } else {
            n = reader!.readBurst(vec, burstCap);
            if (n === 0) break;
          }
          let done = 0;
          while (done < n && !stop) {
            if (pps > 0) {
              const ahead = sent / pps - elapsed();
              if (ahead > 0.001) await new Promise((r) => setTimeout(r, ahead * 1000));
            }
            const k = source.send(vec.subarray(done), n - done);
            sent += k;
            done += k;
            // The kernel is busy (socket buffer full): let it drain.
            if (k === 0) await new Promise((r) => setImmediate(r));
          }
          if (done < n) arena.freeBurst(vec.subarray(done), n - done);
          if ((++bursts & 255) === 0) await new Promise((r) => setImmediate(r));
        }
      } finally {
        reader?.close();
      }
    }
  } finally {
    removeSignals();
    if (held) arena.freeBurst(held, held.length);
  }
  const seconds = elapsed();
  const stats = source.stats();
  source.close();
  const bytes = stats.sentBytes;
  const report = { sent: stats.sent, bytes, seconds: Number(seconds.toFixed(6)), pps: Math.round(stats.sent / seconds), errors: stats.sendErrors };
  if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${values.interface}: sent ${report.sent} packets (${bytes} bytes) in ${seconds.toFixed(3)} s, ${report.pps} packets/s${report.errors ? `; ${report.errors} refused by the link (longer than the MTU?)` : ''}\n`);
  return 0;
}

/** The file's packets held in arena slots, or undefined when they would take over half the arena. */
function preload(file: string, arena: Arena): Uint32Array | undefined {
  const reader = PcapReader.open(file, { arena });
  const limit = arena.slotCount >>> 1;
  const held = arena.burstVector(limit);
  let n = 0;
  try {
    for (let k; n < limit && (k = reader.readBurst(held.subarray(n), Math.min(BURST, limit - n))) > 0; ) n += k;
    if (n === limit) {
      // More than fits: stream the file on every pass instead.
      const probe = arena.burstVector(1);
      if (reader.readBurst(probe, 1) > 0) {
        arena.freeBurst(probe, 1);
        arena.freeBurst(held, n);
        return undefined;
      }
    }
  } finally {
    reader.close();
  }
  return held.subarray(0, n);
}

// Like tcpdump, -r - reads the capture from standard input (a file, pipe or socket).
function openCapture(file: string, arena: Arena): PcapReader {
  return file === '-' ? PcapReader.fromFd(0, 'standard input', { arena }) : PcapReader.open(file, { arena });
}

function displayName(file: string): string {
  const rel = relative(process.cwd(), file);
  return file === SAMPLE ? 'samples/sample.pcap (bundled sample)' : rel.startsWith('..') ? file : rel;
}

function tsSeconds(arena: Arena, slot: number): number {
  return arena.timestampSec(slot) + arena.timestampNsec(slot) / 1e9;
}

function progressBar(file: string, quiet: boolean): cliProgress.SingleBar | undefined {
  if (quiet || !process.stderr.isTTY) return undefined;
  let size = 0;
  try {
    size = statSync(file).size;
  } catch {
    return undefined;
  }
  if (size < 64 * 1024 * 1024) return undefined;
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format: 'reading {bar} {percentage}% | {value}/{total} bytes' }, cliProgress.Presets.shades_classic);
  bar.start(size, 0);
  return bar;
}

function jsonReport(s: DispatcherStats) {
  const owners: Record<string, { packets: number; bytes: number }> = {};
  for (const o of s.owners) owners[o.name] = { packets: o.packets, bytes: o.bytes };
  const bytes = s.owners.reduce((b, o) => b + o.bytes, s.default.bytes);
  return {
    packets: s.in,
    bytes,
    owners,
    default: { packets: s.default.packets, bytes: s.default.bytes },
    drops: s.dropped,
  };
}

function table(title: string, s: DispatcherStats, arena: Arena, span: number): string {
  const rows = [...s.owners.map((o) => [o.name, o.packets, o.bytes] as const), ['(default)', s.default.packets, s.default.bytes] as const];
  const total = s.in || 1;
  const head = ['owner', 'packets', 'bytes', 'share', 'pkt/s'];
  const body = rows.map(([name, p, b]) => [name, String(p), String(b), `${((100 * p) / total).toFixed(1)}%`, span > 0 ? (p / span).toFixed(1) : '-']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const drops = Object.entries(s.dropped).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  return [
    title,
    line(head),
    ...body.map(line),
    `drops: ${drops}; truncated to slot: ${arena.stats.truncated}`,
    '',
  ].join('\n');
}

// netpd compile [-d | -dd | -ddd] [-O0] EXPR: the program in tcpdump's output forms
// (-dd is -d twice, as tcpdump counts it).
function compile(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: { d: { type: 'boolean', short: 'd', multiple: true }, optimize: { type: 'string', short: 'O' } },
    allowPositionals: true,
    strict: true,
  });
  const level = values.d?.length ?? 1;
  if (level > 3) throw new NetpdError('EINVAL', 'give one of -d, -dd, -ddd');
  if (values.optimize !== undefined && values.optimize !== '0') throw new NetpdError('EINVAL', `-O takes only 0 (no optimizer), got "${values.optimize}"`);
  if (positionals.length === 0) throw new NetpdError('EINVAL', `compile needs an expression\n${USAGE}`);
  const program = compileFilter(positionals.join(' '), { optimize: values.optimize !== '0' });
  process.stdout.write(formatProgram(program, (['d', 'dd', 'ddd'] as const)[level - 1]));
  return 0;
}

// netpd bench dispatch -r FILE --rules-file RULES [--filter-type bpf|dpf] [--jit|--no-jit] [--json]
async function benchDispatch(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      read: { type: 'string', short: 'r' },
      'rules-file': { type: 'string' },
      json: { type: 'boolean' },
      time: { type: 'string' },
      ...DISPATCH_OPTIONS,
    },
    strict: true,
  });
  if (!values.read || !values['rules-file']) throw new NetpdError('EINVAL', `bench dispatch needs -r FILE and --rules-file RULES\n${USAGE}`);
  const choice = dispatchChoice(values);
  const r = await runDispatchBench({
    file: values.read,
    rules: parseRules(readText(values['rules-file'])),
    ...choice,
    minTimeMs: values.time === undefined ? undefined : count(values.time, '--time', 'number of milliseconds'),
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ rules: r.rules, nsPerPacket: round(r.nsPerPacket, 2), mpps: round(r.mpps, 3), matched: r.matched })}\n`);
  } else {
    process.stdout.write(`${r.rules} rules (${choice.filterType}, ${r.jit ? 'compiled to WebAssembly' : 'interpreted'}), ${r.packets} packets held in the arena, ` +
      `median of ${r.passes} passes: ${r.nsPerPacket.toFixed(1)} ns/packet, ${r.mpps.toFixed(2)} M packets/s; ` +
      `${r.matched} of ${r.packets} matched an owner; registered in ${r.registerMs.toFixed(1)} ms` +
      `${choice.jit ? `, compiled in ${r.compileMs.toFixed(1)} ms` : ''}\n`);
  }
  return 0;
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

async function filter(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { read: { type: 'string', short: 'r' }, program: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  if (!values.read) throw new NetpdError('EINVAL', `filter needs -r FILE\n${USAGE}`);
  if (!values.program && positionals.length === 0) throw new NetpdError('EINVAL', `filter needs an expression or --program FILE.ddd\n${USAGE}`);
  if (values.program && positionals.length > 0) throw new NetpdError('EINVAL', 'give either an expression or --program, not both');
  // Like tcpdump, the words of the expression may come as separate arguments.
  const program = values.program ? parseDdd(readText(values.program)) : compileFilter(positionals.join(' '));
  // Slots as large as libpcap's largest record, so no packet is cut before filtering.
  const arena = Arena.create({ slotSize: 262144, slotCount: BURST });
  const bpf = new BpfFilter(arena, program);
  const reader = openCapture(values.read, arena);
  const vec = arena.burstVector(BURST);
  const out = arena.burstVector(BURST);
  const lines: string[] = [];
  let number = 0;
  try {
    for (let n = reader.readBurst(vec, BURST); n > 0; n = reader.readBurst(vec, BURST)) {
      bpf.run(vec, n, out);
      for (let i = 0; i < n; i++) if (out[i] !== 0) lines.push(String(number + i + 1));
      number += n;
      arena.freeBurst(vec, n);
      if (lines.length > 4096) {
        process.stdout.write(`${lines.join('\n')}\n`);
        lines.length = 0;
      }
    }
  } finally {
    reader.close();
  }
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

// Output piped into `head` and closed early is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(0);
});

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof NetpdError) {
      process.stderr.write(`netpd: ${err.message}\n`);
      process.exitCode = 1;
    } else if (err instanceof Error && 'code' in err && String((err as { code: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`netpd: ${err.message}\n${USAGE}\n`);
      process.exitCode = 2;
    } else {
      throw err;
    }
  },
);
