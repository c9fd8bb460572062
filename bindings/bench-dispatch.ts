// `netpd bench dispatch`: how fast a dispatcher sorts a capture among a user's own rules.
//
// The capture is read into arena slots once and held there, so the measurement is
// classification and delivery alone — no file reading, no allocation. Owners take whole
// runs (pushBatch) and only count, which is the dispatcher's own cost per owner. The
// capture is dispatched pass after pass; each pass is timed on its own and the median
// is reported, so a garbage collection or a tier-up of the compiled code in one pass
// does not move the result. With the JIT on, timing starts once the compiled classifier
// for the registered rules is in place.

import { NetpdError } from './errors.js';
import { Arena } from './arena.js';
import { isDddText, parseDdd } from './bpf.js';
import { probeCore } from './core.js';
import { PacketDispatcher, type Description, type DispatcherOptions, type FilterType } from './dispatcher.js';
import type { DpfDescription } from './dpf/description.js';
import { DpfTrie } from './dpf/trie.js';
import { compileFilter, type CompileOptions } from './filter/compile.js';
import { tokenize } from './filter/lexer.js';
import type { Netio } from './netio.js';
import { PcapReader } from './pcap/index.js';

export interface BenchDispatchOptions {
  /** The capture whose packets are dispatched. */
  file: string;
  /** One owner per rule: a pcap-filter expression (a line of a rules file) or, for 'dpf', atoms. */
  rules: readonly Rule[];
  filterType: FilterType;
  jit: boolean;
  /** Bytes of the arena's control region, which holds the dispatcher (default: what the rules need, see sizeForRules). */
  controlBytes?: number;
  /** Least total time spent timing passes, in ms (default 1000); at least `minPasses` passes run. */
  minTimeMs?: number;
  minPasses?: number;
}

export interface BenchDispatchResult {
  rules: number;
  packets: number;
  passes: number;
  nsPerPacket: number;
  mpps: number;
  /** Packets of one pass that went to an owner rather than the default netio. */
  matched: number;
  /** True when the compiled classifier did the work. */
  jit: boolean;
  /** Time to register every rule, and then (with the JIT) to have compiled code ready, in ms. */
  registerMs: number;
  compileMs: number;
}

const BURST = 256;

export async function benchDispatch(options: BenchDispatchOptions): Promise<BenchDispatchResult> {
  if (options.rules.length === 0) throw new NetpdError('EINVAL', 'the rules file has no rules (one pcap-filter expression per line)');
  const { count, linkType, byteOrder, mixed } = countPackets(options.file);
  if (mixed) throw new NetpdError('ENOTSUP', `${options.file} has interfaces of several link types; the rules are compiled for one`);
  if (count === 0) throw new NetpdError('EINVAL', `${options.file} holds no packets`);
  // Compiled for the capture's link type, as `netpd run -r FILE` compiles them.
  const sized = sizeForRules(options.rules, { filterType: options.filterType, burstSize: BURST, linkType, byteOrder, savefile: true });
  const arena = Arena.create({ slotSize: 2048, slotCount: count + BURST, controlBytes: options.controlBytes ?? sized.controlBytes });
  const all = arena.burstVector(count);
  const reader = PcapReader.open(options.file, { arena });
  let held = 0;
  try {
    while (held < count) {
      const n = reader.readBurst(all.subarray(held), Math.min(BURST, count - held));
      if (n === 0) break;
      held += n;
    }
  } finally {
    reader.close();
  }
  const bursts: [Uint32Array, number][] = [];
  for (let i = 0; i < held; i += BURST) bursts.push([all.subarray(i), Math.min(BURST, held - i)]);

  const sink = { pushBatch: () => {} };
  const pd = PacketDispatcher.create({
    arena,
    defaultNetio: sink,
    filterType: options.filterType,
    jit: options.jit,
    ...sized.dispatcher,
  });
  const t0 = performance.now();
  registerRules(pd, sized.rules, sink);
  const t1 = performance.now();
  await pd.jitReady();
  const t2 = performance.now();

  const pass = (): number => {
    const start = process.hrtime.bigint();
    for (const [vec, n] of bursts) pd.dispatchBurst(vec, n);
    return Number(process.hrtime.bigint() - start);
  };
  // One untimed pass counts what matched and warms the code.
  const before = pd.stats().default.packets;
  pass();
  const matched = held - (pd.stats().default.packets - before);
  const minTime = (options.minTimeMs ?? 1000) * 1e6;
  const minPasses = options.minPasses ?? 5;
  const times: number[] = [];
  let spent = 0;
  while (times.length < minPasses || spent < minTime) {
    const ns = pass();
    times.push(ns);
    spent += ns;
  }
  times.sort((a, b) => a - b);
  const median = times[times.length >> 1];
  const nsPerPacket = median / held;
  return {
    rules: options.rules.length,
    packets: held,
    passes: times.length,
    nsPerPacket,
    mpps: 1e3 / nsPerPacket,
    matched,
    jit: pd.jitActive,
    registerMs: t1 - t0,
    compileMs: t2 - t1,
  };
}

/** A named owner description, as `--rule NAME=EXPR` and rules files give them. */
export interface Rule {
  name: string;
  description: Description;
}

/**
 * Registers one owner per rule, all with `netio`; a refused rule's error says which rule
 * it was. Throws EINVAL, naming it, when a name is given twice (each owner's counters
 * are reported under its name).
 */
export function registerRules(pd: PacketDispatcher, rules: readonly Rule[], netio: Netio): void {
  checkNames(rules);
  for (const r of rules) forRule(r, () => pd.register(r.description, netio, { name: r.name }));
}

function checkNames(rules: readonly Rule[]): void {
  const seen = new Set<string>();
  for (const r of rules) {
    if (seen.has(r.name)) throw new NetpdError('EINVAL', `rule name "${r.name}" is given twice`);
    seen.add(r.name);
  }
}

/** Runs `f` for a rule; a NetpdError it throws comes out naming the rule. */
function forRule<T>(rule: Rule, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof NetpdError) throw new NetpdError(err.code, `rule "${rule.name}": ${err.message.replace(/^E\w+: /, '')}`, { cause: err, details: err.details });
    throw err;
  }
}

/**
 * Reads a rules file: one rule per line, `NAME=EXPR` or a bare `EXPR` (named by the
 * expression itself); blank lines and lines starting with # are skipped. A line is
 * `NAME=EXPR` when what comes before its first `=` is a single name, not a filter keyword
 * or number (so `len = 100` and `ip[0] = 69` stay expressions).
 */
export function parseRules(text: string): Rule[] {
  const rules: Rule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const name = eq > 0 && line[eq + 1] !== '=' ? line.slice(0, eq).trim() : '';
    if (name !== '' && isName(name)) rules.push({ name, description: line.slice(eq + 1).trim() });
    else rules.push({ name: line, description: line });
  }
  return rules;
}

function isName(text: string): boolean {
  try {
    const tokens = tokenize(text);
    return tokens.length === 2 && tokens[0].kind === 'id' && tokens[0].text === text;
  } catch {
    return false;
  }
}

export interface SizeOptions extends Pick<CompileOptions, 'byteOrder' | 'savefile'> {
  filterType: FilterType;
  burstSize?: number;
  /** The link type the expressions are compiled for (default EN10MB). */
  linkType?: number;
}

/** What a rule set needs: the rules with expressions compiled, and the capacities to create the arena and dispatcher with. */
export interface RuleSizes {
  rules: Rule[];
  /** Bytes of the arena's control region: the dispatcher, the DPF trie, and 16 MiB for everything else. */
  controlBytes: number;
  dispatcher: Required<Pick<DispatcherOptions, 'maxOwners' | 'programCapacity' | 'burstSize'>> & { dpf: { maxNodes: number; maxEdges: number; maxFields: number } };
}

const HEADROOM = 16 * 1024 * 1024;

/**
 * Sizes an arena and dispatcher for `rules`, so that a rules file of any length registers
 * without the user choosing capacities: the expressions are compiled here (once; the
 * compiled programs or DPF descriptions are what gets registered), their instructions or
 * atoms counted, and the control region made large enough for the dispatcher and trie.
 * Throws what compiling throws, naming the rule.
 */
export function sizeForRules(rules: readonly Rule[], options: SizeOptions): RuleSizes {
  checkNames(rules);
  const burstSize = options.burstSize ?? BURST;
  const maxOwners = Math.max(4096, rules.length);
  const dpf = options.filterType === 'dpf';
  let instructions = 0;
  let atoms = 0;
  const fields = new Set<string>();
  const compiling = { linkType: options.linkType, byteOrder: options.byteOrder, savefile: options.savefile };
  const compiled = rules.map((r): Rule => forRule(r, () => {
    if (dpf) {
      const paths: readonly DpfDescription[] = typeof r.description === 'string'
        ? compileFilter(r.description, { ...compiling, target: 'dpf' })
        : isPathList(r.description) ? r.description : [r.description as DpfDescription];
      for (const path of paths) {
        atoms += path.length;
        for (const a of path) fields.add('shift' in a ? JSON.stringify(a.shift) : `${a.offset}/${a.size}/${a.mask ?? ''}`);
      }
      return typeof r.description === 'string' ? { name: r.name, description: paths } : r;
    }
    const program = typeof r.description !== 'string' ? r.description
      : isDddText(r.description) ? parseDdd(r.description) : compileFilter(r.description, compiling);
    instructions += (program as readonly unknown[]).length;
    return { name: r.name, description: program };
  }));
  const programCapacity = Math.max(131072, instructions + 1024);
  const maxNodes = Math.max(maxOwners * 8 + 64, atoms + 64);
  const trie = { maxNodes, maxEdges: maxNodes, maxFields: Math.max(4096, fields.size) };
  const core = probeCore().exports;
  const controlBytes = (core.dispatch_bytes(maxOwners, programCapacity, burstSize) >>> 0) + (dpf ? DpfTrie.bytes(trie) : 0) + HEADROOM;
  return { rules: compiled, controlBytes, dispatcher: { maxOwners, programCapacity, burstSize, dpf: trie } };
}

function isPathList(d: Description): d is readonly DpfDescription[] {
  return Array.isArray(d) && d.length > 0 && d.every(Array.isArray);
}
/** The capture's packets, and the link type and byte order its rules are compiled for. */
function countPackets(file: string): { count: number; linkType: number; byteOrder: 'le' | 'be'; mixed: boolean } {
  const arena = Arena.create({ slotSize: 2048, slotCount: BURST });
  const vec = arena.burstVector(BURST);
  const reader = PcapReader.open(file, { arena });
  let total = 0;
  try {
    for (let n = reader.readBurst(vec, BURST); n > 0; n = reader.readBurst(vec, BURST)) {
      total += n;
      arena.freeBurst(vec, n);
    }
  } finally {
    reader.close();
  }
  return { count: total, linkType: reader.linkType < 0 ? 1 : reader.linkType, byteOrder: reader.byteOrder, mixed: reader.mixedLinkTypes };
}
