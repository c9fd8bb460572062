// The dispatcher with DPF descriptions and with compiled classifiers, checked against
// the BPF dispatcher (whose programs are checked against libpcap elsewhere):
//  - DPF ≡ BPF: for rule sets DPF can express, every packet of every reference capture,
//    whole and cut short, goes to the same owner — DPF interpreted and compiled;
//  - the most specific description wins, whatever order owners registered in;
//  - equal descriptions (EDUPDESC), malformed ones (EBADDESC) and expressions DPF
//    cannot express (EFILTER) are refused, leaving the dispatcher as it was;
//  - 100,000 5-tuple owners each get their flow and only theirs; owners coming and
//    going between bursts lose no packet and leak no slot;
//  - compiled code: used once ready, dropped the moment the rules change, and for DPF
//    kept when an owner joins under an existing hash node (no recompilation).
import { describe, it, expect, beforeAll, beforeEach } from 'vitest';
import { Arena } from '../bindings/arena.js';
import { PacketDispatcher, type FilterType } from '../bindings/dispatcher.js';
import { NetpdError } from '../bindings/errors.js';
import type { DpfDescription } from '../bindings/dpf/description.js';
import { compileDpf, toDescription } from '../bindings/dpf/compile.js';
import { canonicalDescription } from '../bindings/dpf/description.js';
import { compileFilter } from '../bindings/filter/compile.js';
import { loadCapture } from './support/captures.js';
import { fiveTuple, flowFrame, flowExpression, type Flow } from './support/flows.mjs';

const CAPTURES = ['scapy-l2.pcap', 'scapy-ipv4.pcap', 'scapy-ipv6.pcap', 'scapy-runts.pcap', 'scapy-snaplen.pcap', 'veth-replay.pcap', 'veth-sockets.pcap'];
const SAMPLE_RULES = ['arp[6:2] = 1', 'arp[6:2] = 2', 'ip and tcp', 'udp port 53', 'ip6'];

function thrown(fn: () => unknown): NetpdError {
  try {
    fn();
  } catch (e) {
    if (e instanceof NetpdError) return e;
    throw e;
  }
  throw new Error('expected a NetpdError');
}

/** Every packet of the reference captures, plus copies cut to a few shorter lengths. */
function packetsOf(arena: Arena): { vec: Uint32Array; n: number } {
  const slots: number[] = [];
  for (const name of CAPTURES) {
    const { vec, n } = loadCapture(arena, name, 2048);
    slots.push(...vec.subarray(0, n));
  }
  const whole = slots.length;
  const cuts = arena.burstVector(whole * 3);
  expect(arena.allocBurst(cuts, whole * 3)).toBe(whole * 3);
  for (let i = 0; i < whole; i++) {
    const s = slots[i];
    const cap = arena.capLen(s);
    [14, 34, Math.max(0, cap - 1)].forEach((len, j) => {
      const t = cuts[i * 3 + j];
      arena.bytes.copyWithin(arena.dataOffset(t), arena.dataOffset(s), arena.dataOffset(s) + cap);
      arena.setPacket(t, Math.min(len, cap), arena.wireLen(s), 0, 0, 0);
    });
  }
  slots.push(...cuts);
  const vec = arena.burstVector(slots.length);
  vec.set(slots);
  return { vec, n: slots.length };
}

/** The owner name each packet went to ('default' for the default netio). */
async function routes(arena: Arena, packets: { vec: Uint32Array; n: number }, filterType: FilterType, jit: boolean, rules: readonly (string | DpfDescription)[]): Promise<{ names: string[]; pd: PacketDispatcher }> {
  const names = new Array<string>(arena.slotCount).fill('');
  const pd = PacketDispatcher.create({ arena, filterType, jit, defaultNetio: (p) => { names[p.slot] = 'default'; } });
  rules.forEach((rule, i) => pd.register(rule, (p) => { names[p.slot] = `r${i}`; }, { name: `r${i}` }));
  await pd.jitReady();
  if (jit) expect(pd.jitActive).toBe(true);
  for (let i = 0; i < packets.n; i += 256) pd.dispatchBurst(packets.vec.subarray(i), Math.min(256, packets.n - i));
  return { names: Array.from(packets.vec.subarray(0, packets.n), (s) => names[s]), pd };
}

describe('DPF dispatcher ≡ BPF dispatcher', () => {
  const arena = Arena.create({ slotSize: 16384, slotCount: 8192, controlBytes: 64 << 20 });
  let packets: { vec: Uint32Array; n: number };
  beforeAll(() => { packets = packetsOf(arena); });

  const sets: [string, string[]][] = [
    ['the bundled sample\'s rules', SAMPLE_RULES],
    ['hosts, nets and ports', ['host 10.0.0.1 and tcp dst port 80', 'udp dst port 53 and src net 10.0.0.0/8', 'ip6 and tcp port 443', 'ether dst ff:ff:ff:ff:ff:ff and arp', 'icmp']],
    ['most specific first (BPF order = DPF specificity)', ['tcp dst port 80 and dst host 10.0.0.2', 'tcp dst port 80', 'ip and tcp', 'ip']],
  ];
  for (const [label, rules] of sets) {
    it(`routes every packet as BPF does: ${label} (interpreted and compiled, whole and cut packets)`, async () => {
      const bpf = await routes(arena, packets, 'bpf', false, rules);
      expect(new Set(bpf.names).size).toBeGreaterThan(2);
      for (const jit of [false, true]) {
        const dpf = await routes(arena, packets, 'dpf', jit, rules);
        const differ = bpf.names.flatMap((name, i) => (name === dpf.names[i] ? [] : [`packet ${i}: bpf ${name}, dpf ${dpf.names[i]}`]));
        expect(differ.slice(0, 5)).toEqual([]);
        const s = dpf.pd.stats();
        expect(s.in).toBe(packets.n);
        expect(s.delivered).toBe(packets.n);
      }
    });
  }

  it('gives a packet to the most specific description, whatever the registration order', async () => {
    const specificFirst = ['tcp dst port 80 and dst host 10.0.0.2', 'tcp dst port 80', 'ip and tcp', 'ip'];
    const bpf = await routes(arena, packets, 'bpf', false, specificFirst);
    const reversed = [...specificFirst].reverse();
    const dpf = await routes(arena, packets, 'dpf', false, reversed);
    // Rule i of the reversed list is rule (3 - i) of the BPF list.
    const renamed = dpf.names.map((n) => (n === 'default' ? n : `r${3 - Number(n.slice(1))}`));
    expect(renamed).toEqual(bpf.names);
  });
});

describe('DPF descriptions at registration', () => {
  let arena: Arena;
  beforeEach(() => { arena = Arena.create({ slotSize: 256, slotCount: 64 }); });
  const ipv4Udp: DpfDescription = [{ offset: 12, size: 2, value: 0x0800 }, { offset: 23, size: 1, value: 17 }];

  it('refuses an equal description (EDUPDESC), also when its atoms come in another order', () => {
    const pd = PacketDispatcher.create({ arena, filterType: 'dpf', jit: false });
    pd.register(ipv4Udp, () => {});
    expect(thrown(() => pd.register([...ipv4Udp].reverse(), () => {})).code).toBe('EDUPDESC');
    expect(thrown(() => pd.register('arp', () => {}) && pd.register('arp', () => {})).code).toBe('EDUPDESC');
    expect(pd.ownerCount).toBe(2);
  });

  it('undoes a registration whose later alternative is a duplicate', () => {
    const pd = PacketDispatcher.create({ arena, filterType: 'dpf', jit: false });
    const udp6 = compileAlternatives('ip6 and udp');
    pd.register(udp6[1], () => {});
    // 'ip6 and udp' has two alternatives; the second is taken, so neither may stay.
    expect(thrown(() => pd.register('ip6 and udp', () => {})).code).toBe('EDUPDESC');
    expect(pd.ownerCount).toBe(1);
    pd.register(udp6[0], () => {});
    expect(pd.ownerCount).toBe(2);
  });

  it('refuses malformed descriptions (EBADDESC) and BPF programs given to a DPF dispatcher', () => {
    const pd = PacketDispatcher.create({ arena, filterType: 'dpf', jit: false });
    expect(thrown(() => pd.register([{ offset: 12, size: 3 as 2, value: 1 }], () => {})).code).toBe('EBADDESC');
    expect(thrown(() => pd.register([{ offset: 12, size: 1, mask: 0x0f, value: 0x10 }], () => {})).details).toEqual({ atom: 0 });
    expect(thrown(() => pd.register([], () => {})).code).toBe('EBADDESC');
    expect(thrown(() => pd.register([{ code: 6, jt: 0, jf: 0, k: 1 }] as never, () => {})).message).toMatch(/filterType "bpf"/);
    expect(pd.ownerCount).toBe(0);
  });

  it('compiles a 5-tuple expression to the one description of its fields (compileFilter target "dpf")', () => {
    const f: Flow = { proto: 6, src: 0x0a000001, dst: 0x0a000002, sport: 40000, dport: 80 };
    const [only, ...rest] = compileFilter(flowExpression(f), { target: 'dpf' });
    expect(rest).toEqual([]);
    expect(canonicalDescription(only)).toEqual(canonicalDescription(fiveTuple(f)));
  });

  it('says why an expression cannot be a DPF description (EFILTER)', () => {
    const pd = PacketDispatcher.create({ arena, filterType: 'dpf', jit: false });
    const err = thrown(() => pd.register('not arp', () => {}));
    expect(err.code).toBe('EFILTER');
    expect(err.message.length).toBeGreaterThan(30);
    expect(pd.ownerCount).toBe(0);
  });
});

/** The DPF alternatives the dispatcher makes of an expression, in the public atom form. */
function compileAlternatives(expr: string): DpfDescription[] {
  return compileDpf(expr, { optimize: true }).map(toDescription);
}

function putFrame(arena: Arena, slot: number, f: Flow): void {
  arena.bytes.set(flowFrame(f), arena.dataOffset(slot));
  arena.setPacket(slot, 60, 64, 0, 0, 0);
}

function flows(n: number): Flow[] {
  // Distinct by construction: i spreads over source address and port.
  return Array.from({ length: n }, (_, i) => ({ proto: i & 1 ? 6 : 17, src: (0x0a000000 + (i >>> 8)) >>> 0, dst: 0xc0a80001, sport: 1024 + (i & 0xff), dport: 80 + (i % 3) }));
}

describe('DPF at scale', () => {
  it('100,000 5-tuple owners: each flow reaches its owner and only its owner (interpreted and compiled)', async () => {
    const N = 100_000;
    const fl = flows(N);
    for (const jit of [false, true]) {
      const arena = Arena.create({ slotSize: 128, slotCount: 4096, controlBytes: 64 << 20 });
      const got = new Int32Array(N).fill(-1);
      let wrong = 0;
      let current = -1;
      const pd = PacketDispatcher.create({ arena, filterType: 'dpf', jit, maxOwners: N, defaultNetio: () => { wrong++; } });
      const ids = fl.map((f, i) => pd.register(fiveTuple(f), { pushBatch: (b) => { for (let k = 0; k < b.length; k++) { if (got[i] !== -1 && got[i] !== current) wrong++; got[i] = current; } } }));
      expect(new Set(ids).size).toBe(N);
      await pd.jitReady();
      expect(pd.jitActive).toBe(jit);
      const vec = arena.burstVector(256);
      for (let i = 0; i < N; i += 256) {
        const k = Math.min(256, N - i);
        expect(arena.allocBurst(vec, k)).toBe(k);
        for (let j = 0; j < k; j++) putFrame(arena, vec[j], fl[i + j]);
        current = i;
        // Every packet of this burst belongs to owner i + j: record the burst index per owner.
        pd.dispatchBurst(vec, k);
        arena.freeBurst(vec, k);
      }
      expect(wrong).toBe(0);
      // Owner i saw exactly its own packet, in the burst that carried flow i.
      const misrouted = fl.flatMap((_, i) => (got[i] === i - (i % 256) ? [] : [i]));
      expect(misrouted.slice(0, 5)).toEqual([]);
      const s = pd.stats();
      expect(s.delivered).toBe(N);
      expect(s.default.packets).toBe(0);
      expect(arena.stats.inUse).toBe(0);
    }
  });

  it('owners registered and unregistered from inside a netio callback, compiled or not: the change applies from the next burst', async () => {
    for (const jit of [false, true]) {
      const arena = Arena.create({ slotSize: 128, slotCount: 64 });
      const fl = flows(3);
      const seen: string[] = [];
      const pd = PacketDispatcher.create({ arena, filterType: 'dpf', jit, defaultNetio: () => seen.push('default') });
      let second = -1;
      const first = pd.register(fiveTuple(fl[0]), () => {
        seen.push('first');
        if (second < 0) second = pd.register(fiveTuple(fl[1]), () => seen.push('second'));
        else pd.unregister(first);
      });
      await pd.jitReady();
      const vec = arena.burstVector(2);
      const burst = async () => {
        expect(arena.allocBurst(vec, 2)).toBe(2);
        putFrame(arena, vec[0], fl[0]);
        putFrame(arena, vec[1], fl[1]);
        pd.dispatchBurst(vec, 2);
        arena.freeBurst(vec, 2);
        await pd.jitReady();
      };
      await burst(); // 'second' is registered while this burst is delivered: its packet still goes to the default
      await burst(); // now it is an owner; 'first' unregisters itself
      await burst(); // 'first' is gone
      expect(seen).toEqual(['first', 'default', 'first', 'second', 'default', 'second']);
      expect(pd.stats().delivered).toBe(6);
      expect(arena.stats.inUse).toBe(0);
    }
  });

  it('owners registered and unregistered between bursts: no packet lost, none misrouted, no slot leaked', async () => {
    const fl = flows(2000);
    for (const jit of [false, true]) {
      const arena = Arena.create({ slotSize: 128, slotCount: 1024 });
      const live = new Map<number, number>(); // flow index -> owner id
      const owner = new Map<number, number>(); // owner id -> flow index
      let misrouted = 0;
      let toDefault = 0;
      let expectDefault = 0;
      const pd = PacketDispatcher.create({ arena, filterType: 'dpf', jit, maxOwners: 4096, defaultNetio: () => { toDefault++; } });
      let random = 12345;
      const next = () => { random = (Math.imul(random, 1103515245) + 12345) >>> 0; return random; };
      const vec = arena.burstVector(128);
      const want = new Int32Array(128);
      for (let round = 0; round < 300; round++) {
        for (let c = 0; c < 20; c++) {
          const f = next() % fl.length;
          const id = live.get(f);
          if (id === undefined) {
            const pid: number = pd.register(fiveTuple(fl[f]), { pushBatch: (b) => { for (let k = 0; k < b.length; k++) if (want[b.slots[b.start + k] & 127] !== owner.get(pid)) misrouted++; } });
            live.set(f, pid);
            owner.set(pid, f);
          } else {
            pd.unregister(id);
            live.delete(f);
          }
        }
        if (round % 50 === 0) await pd.jitReady();
        expect(arena.allocBurst(vec, 128)).toBe(128);
        for (let j = 0; j < 128; j++) {
          const f = next() % fl.length;
          putFrame(arena, vec[j], fl[f]);
          want[vec[j] & 127] = live.has(f) ? f : -1;
          if (!live.has(f)) expectDefault++;
        }
        // Slots are 0..1023 and only 128 are in use at a time, so slot & 127 is unique per burst.
        expect(new Set(Array.from(vec, (s) => s & 127)).size).toBe(128);
        pd.dispatchBurst(vec, 128);
        arena.freeBurst(vec, 128);
      }
      expect(misrouted).toBe(0);
      expect(toDefault).toBe(expectDefault);
      const s = pd.stats();
      expect(s.in).toBe(300 * 128);
      expect(s.delivered).toBe(s.in);
      expect(arena.stats.inUse).toBe(0);
    }
  });
});

describe('compiled classifiers in the dispatcher', () => {
  it('BPF: compiled once ready, dropped when the rules change, and routing like the interpreter throughout', async () => {
    const arena = Arena.create({ slotSize: 16384, slotCount: 8192 });
    const packets = packetsOf(arena);
    const pd = PacketDispatcher.create({ arena, filterType: 'bpf', jit: true, defaultNetio: () => {} });
    SAMPLE_RULES.forEach((r) => pd.register(r, () => {}));
    expect(pd.jitActive).toBe(false);
    await pd.jitReady();
    expect(pd.jitActive).toBe(true);
    // Five registrations in a row compile once.
    const compiles = pd.stats().jit.compiles;
    expect(compiles).toBe(1);
    const id = pd.register('icmp', () => {});
    expect(pd.jitActive).toBe(false);
    pd.unregister(id);
    await pd.jitReady();
    expect(pd.stats().jit.compiles).toBe(compiles + 1);
    const interpreted = await routes(arena, packets, 'bpf', false, SAMPLE_RULES);
    const compiled = await routes(arena, packets, 'bpf', true, SAMPLE_RULES);
    expect(compiled.names).toEqual(interpreted.names);
  });

  it('DPF: an owner joining under an existing hash node keeps the compiled code; a new field recompiles', async () => {
    const arena = Arena.create({ slotSize: 128, slotCount: 256, controlBytes: 32 << 20 });
    const fl = flows(1001);
    const got: number[] = [];
    const pd = PacketDispatcher.create({ arena, filterType: 'dpf', jit: true, maxOwners: 2048, defaultNetio: () => got.push(-1) });
    fl.slice(0, 1000).forEach((f, i) => pd.register(fiveTuple(f), () => got.push(i)));
    await pd.jitReady();
    expect(pd.jitActive).toBe(true);
    const compiles = pd.stats().jit.compiles;
    pd.register(fiveTuple(fl[1000]), () => got.push(1000));
    expect(pd.jitActive).toBe(true);
    const vec = arena.burstVector(2);
    arena.allocBurst(vec, 2);
    putFrame(arena, vec[0], fl[1000]);
    putFrame(arena, vec[1], fl[7]);
    pd.dispatchBurst(vec, 2);
    expect(got).toEqual([1000, 7]);
    await pd.jitReady();
    expect(pd.stats().jit.compiles).toBe(compiles);
    // ARP ([12:2] = 0x0806) is one more value of a field the root already tests: data.
    pd.register('arp', () => {});
    expect(pd.jitActive).toBe(true);
    // A field no node of its shape tested before changes the shape: new code.
    pd.register([{ offset: 0, size: 2, value: 0x0100 }], () => {});
    expect(pd.jitActive).toBe(false);
    await pd.jitReady();
    expect(pd.stats().jit.compiles).toBe(compiles + 1);
    arena.freeBurst(vec, 2);
  });
});
