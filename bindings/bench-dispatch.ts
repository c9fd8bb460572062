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
import { PacketDispatcher, type Description, type FilterType } from './dispatcher.js';
import type { Netio } from './netio.js';
import { PcapReader } from './pcap/index.js';

export interface BenchDispatchOptions {
  /** The capture whose packets are dispatched. */
  file: string;
  /** One description per owner: a pcap-filter expression (a line of a rules file) or, for 'dpf', atoms. */
  rules: readonly Description[];
  filterType: FilterType;
  jit: boolean;
  /** Bytes of the arena's control region, which holds the dispatcher (default 16 MiB; a DPF trie of 100,000 5-tuples wants some 50 MiB). */
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
  const count = countPackets(options.file);
  if (count === 0) throw new NetpdError('EINVAL', `${options.file} holds no packets`);
  const arena = Arena.create({ slotSize: 2048, slotCount: count + BURST, controlBytes: options.controlBytes });
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
    maxOwners: Math.max(4096, options.rules.length),
    burstSize: BURST,
  });
  // An expression names its own rule; atoms go by their place in the list.
  const rules = options.rules.map((description, i) => ({ name: typeof description === 'string' ? description : `#${i + 1}`, description }));
  const t0 = performance.now();
  registerRules(pd, rules, sink);
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

/** Registers one owner per rule, all with `netio`; a refused rule's error says which rule it was. */
export function registerRules(pd: PacketDispatcher, rules: readonly Rule[], netio: Netio): void {
  for (const r of rules) {
    try {
      pd.register(r.description, netio, { name: r.name });
    } catch (err) {
      if (err instanceof NetpdError) throw new NetpdError(err.code, `rule "${r.name}": ${err.message.replace(/^E\w+: /, '')}`, { cause: err, details: err.details });
      throw err;
    }
  }
}

/** Reads a rules file: one expression per line; blank lines and lines starting with # are skipped. */
export function parseRules(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
}

function countPackets(file: string): number {
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
  return total;
}
