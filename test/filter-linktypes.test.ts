// The pcap-filter compiler on the link types other than Ethernet (LINUX_SLL, LINUX_SLL2,
// RAW, IPV4, IPV6, NULL in both byte orders, LOOP), against libpcap, over the captures
// of test/fixtures/linktypes (make-captures.py) and libpcap's answers for the filter
// corpus on each (libpcap.json, make-fixtures.mjs):
//  1. without the optimizer, netpd's program is the one `tcpdump -r FILE -O -ddd` prints,
//     and netpd refuses (EFILTER) exactly what libpcap refuses there; for the link-type
//     expressions, with libpcap's own message;
//  2. with and without the optimizer, netpd's program accepts the packets libpcap's does;
//  3. where gcc, libpcap-dev and tcpdump exist, libpcap.json is derived afresh and must
//     be what is stored (so the fixtures cannot drift from libpcap).
// Then the link-type names and numbers, ENOTSUP, and CaptureFilter on a pcapng whose
// interfaces have different link types, judged interface by interface.
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileFilter, linkTypeName, linkTypeValue } from '../bindings/filter/compile.js';
import { CaptureFilter } from '../bindings/filter/capture-filter.js';
import { Arena } from '../bindings/arena.js';
import { BpfFilter, formatDdd } from '../bindings/bpf.js';
import { PcapReader } from '../bindings/pcap/index.js';
import { PacketDispatcher } from '../bindings/dispatcher.js';
import { Packet } from '../bindings/packet.js';
import { NetpdError } from '../bindings/errors.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const dir = join(root, 'test/fixtures/linktypes');

type Answer = { ddd?: string; accepted?: number[]; error?: string };
interface Capture { file: string; linkType: string; byteOrder: 'le' | 'be'; live?: boolean }
interface Fixture {
  captures: Capture[];
  corpus: { expr: string; source: string; group: string }[];
  /** Per capture, per expression: -r FILE -O, -r FILE, and (live captures) -y LINKTYPE -O. */
  results: Record<string, [Answer, Answer, Answer?][]>;
}
const fixture = JSON.parse(readFileSync(join(dir, 'libpcap.json'), 'utf8')) as Fixture;

// What netpd deliberately does not compile, on any link type (as in filter-compile.test.ts).
const REFUSED = [/protochain/, /geneve|vxlan/, /^isis proto|decnet (host|src|dst)|^decnet [0-9]/, /^(ether |ip |ip6 )?proto (70000|256|300)$/];
const refused = (expr: string) => REFUSED.some((re) => re.test(expr));

function compileOrError(expr: string, c: Capture, optimize: boolean, savefile = true): { program?: ReturnType<typeof compileFilter>; error?: NetpdError } {
  try {
    return { program: compileFilter(expr, { linkType: c.linkType, byteOrder: c.byteOrder, optimize, savefile }) };
  } catch (e) {
    if (!(e instanceof NetpdError)) throw e;
    return { error: e };
  }
}

/** Every packet of a capture of this folder in arena slots, in order, with each slot's interface. */
function load(arena: Arena, file: string): { vec: Uint32Array; n: number; reader: PcapReader } {
  const reader = PcapReader.open(join(dir, file), { arena });
  const vec = arena.burstVector(1024);
  let n = 0;
  for (let got = reader.readBurst(vec, 1024); got > 0; got = reader.readBurst(vec.subarray(n), 1024 - n)) n += got;
  if (!reader.eof) throw new Error(`${file}: not read whole`);
  return { vec, n, reader };
}

const arena = Arena.create({ slotSize: 4096, slotCount: 4096, controlBytes: 64 * 1024 * 1024 });
const out = arena.burstVector(1024);
const loaded = new Map<string, { vec: Uint32Array; n: number; reader: PcapReader }>();
beforeAll(() => {
  for (const c of fixture.captures) loaded.set(c.file, load(arena, c.file));
  for (const f of ['raw12.pcap', 'raw14.pcap', 'mixed.pcapng']) loaded.set(f, load(arena, f));
});

function accepted(program: Parameters<typeof formatDdd>[0], file: string): number[] {
  const { vec, n } = loaded.get(file)!;
  new BpfFilter(arena, program).run(vec, n, out);
  const ours: number[] = [];
  for (let i = 0; i < n; i++) if (out[i] !== 0) ours.push(i + 1);
  return ours;
}

describe('compileFilter on other link types agrees with libpcap', () => {
  it('covers every link type, with expressions each one compiles and refuses', () => {
    expect(new Set(fixture.captures.map((c) => c.linkType))).toEqual(new Set(['LINUX_SLL', 'LINUX_SLL2', 'RAW', 'IPV4', 'IPV6', 'NULL', 'LOOP', 'EN10MB']));
    for (const c of fixture.captures) {
      const answers = fixture.results[c.file];
      expect(answers.filter(([u]) => u.error === undefined).length, c.file).toBeGreaterThan(300);
      if (c.linkType !== 'EN10MB') expect(answers.filter(([u]) => u.error !== undefined).length, c.file).toBeGreaterThan(20);
      // Each capture has packets some filters take and others leave.
      expect(answers.some(([u]) => u.accepted!?.length > 0 && u.accepted!.length < loaded.get(c.file)!.n), c.file).toBe(true);
    }
  });

  for (const c of fixture.captures) {
    for (const live of c.live ? [false, true] : [false]) {
      const how = live ? `tcpdump -y ${c.linkType} -O -d` : `tcpdump -r ${c.file} -O -d`;
      it(`${c.file} (${c.linkType}, ${c.byteOrder}): without the optimizer, the program or the refusal of ${how}`, () => {
      const diffs: string[] = [];
      fixture.corpus.forEach(({ expr, source }, i) => {
        if (refused(expr)) return;
        const want = fixture.results[c.file][i][live ? 2 : 0]!;
        const got = compileOrError(expr, c, false, !live);
        if (want.error !== undefined) {
          if (!got.error || got.error.code !== 'EFILTER') diffs.push(`${expr}: compiles, libpcap says "${want.error}"`);
          // The link-type-specific list must also give libpcap's words.
          else if (source === 'linktypes' && got.error.message !== `EFILTER: ${want.error}`) diffs.push(`${expr}: "${got.error.message}" vs "${want.error}"`);
        } else if (got.error) {
          // libpcap's live code for `pppoes and inbound` loads an ancillary word the kernel
          // does not have: netpd refuses that program, saying so (compile.ts).
          if (!(live && /a program the kernel refuses/.test(got.error.message))) diffs.push(`${expr}: ${got.error.message}`);
        } else if (formatDdd(got.program!) !== want.ddd) {
          diffs.push(`${expr}: program differs`);
        }
      });
      expect(diffs).toEqual([]);
      });
    }

    it(`${c.file}: accepts the packets libpcap accepts, with and without the optimizer`, () => {
      const diffs: string[] = [];
      fixture.corpus.forEach(({ expr }, i) => {
        if (refused(expr)) return;
        for (const [k, optimize] of [[0, false], [1, true]] as const) {
          const want = fixture.results[c.file][i][k];
          const got = compileOrError(expr, c, optimize);
          if (want.error !== undefined) {
            if (!got.error) diffs.push(`${expr} (optimize=${optimize}): compiles, libpcap says "${want.error}"`);
            continue;
          }
          if (got.error) {
            // netpd's optimizer may prove empty what libpcap's does not: fine if libpcap accepts nothing.
            if (!(optimize && want.accepted!.length === 0 && /rejects all packets/.test(got.error.message))) diffs.push(`${expr}: ${got.error.message}`);
            continue;
          }
          const ours = accepted(got.program!, c.file);
          if (ours.join() !== want.accepted!.join()) diffs.push(`${expr} (optimize=${optimize}): [${ours}] vs libpcap [${want.accepted}]`);
        }
      });
      expect(diffs).toEqual([]);
    });
  }

  it('treats link types 12 and 14 (DLT_RAW on Linux and OpenBSD) as RAW', () => {
    const raw = fixture.captures.find((c) => c.file === 'raw.pcap')!;
    fixture.corpus.forEach(({ expr }, i) => {
      const want = fixture.results['raw.pcap'][i][0];
      if (refused(expr) || want.error !== undefined) return;
      for (const [linkType, file] of [[12, 'raw12.pcap'], [14, 'raw14.pcap']] as const) {
        const program = compileFilter(expr, { linkType, optimize: false, savefile: true });
        expect(formatDdd(program), expr).toBe(formatDdd(compileFilter(expr, { linkType: raw.linkType, optimize: false, savefile: true })));
        expect(accepted(program, file), `${expr} on ${file}`).toEqual(want.accepted);
      }
    });
  });
});

const hasTools = ['gcc', 'tcpdump'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0) && existsSync('/usr/include/pcap/pcap.h');
if (!hasTools) console.log('filter-linktypes: fixture re-derivation skipped: needs gcc, libpcap-dev and tcpdump');
describe.skipIf(!hasTools)('the fixtures are what libpcap says now', () => {
  it('make-fixtures.mjs --check finds libpcap.json up to date', () => {
    const r = spawnSync(process.execPath, [join(dir, 'make-fixtures.mjs'), '--check', '--quick'], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toMatch(/up to date/);
    expect(r.status).toBe(0);
  }, 300_000);
});

describe('link type names and numbers', () => {
  it('linkTypeValue takes libpcap\'s names (any case, DLT_/LINKTYPE_ prefix) and numbers', () => {
    expect(linkTypeValue('EN10MB')).toBe(1);
    expect(linkTypeValue('linux_sll')).toBe(113);
    expect(linkTypeValue('DLT_LINUX_SLL2')).toBe(276);
    expect(linkTypeValue('RAW')).toBe(101);
    expect(linkTypeValue('IPV4')).toBe(228);
    expect(linkTypeValue('IPV6')).toBe(229);
    expect(linkTypeValue('NULL')).toBe(0);
    expect(linkTypeValue('LINKTYPE_LOOP')).toBe(108);
    expect(linkTypeValue(105)).toBe(105);
    expect(linkTypeValue('276')).toBe(276);
    expect(() => linkTypeValue('ETHERNETT')).toThrow(/EINVAL: unknown link type "ETHERNETT"/);
    expect(() => linkTypeValue(-1)).toThrow(/EINVAL/);
  });

  it('linkTypeName gives libpcap\'s name, or LINKTYPE_<n>', () => {
    expect([1, 113, 276, 101, 12, 14, 228, 229, 0, 108, 127].map(linkTypeName))
      .toEqual(['EN10MB', 'LINUX_SLL', 'LINUX_SLL2', 'RAW', 'RAW', 'RAW', 'IPV4', 'IPV6', 'NULL', 'LOOP', 'IEEE802_11_RADIO']);
    expect(linkTypeName(4242)).toBe('LINKTYPE_4242');
  });

  it('a link type the compiler does not know is ENOTSUP naming it, never an empty program', () => {
    for (const [linkType, name] of [[127, 'IEEE802_11_RADIO'], ['PPP', 'PPP'], [4242, 'LINKTYPE_4242']] as const) {
      let err: unknown;
      try { compileFilter('tcp', { linkType }); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(NetpdError);
      expect((err as NetpdError).code).toBe('ENOTSUP');
      expect((err as NetpdError).message).toContain(name);
    }
  });

  it('NULL compares the family in the file\'s byte order; LOOP in network order', () => {
    const k = (linkType: string, byteOrder: 'le' | 'be') => compileFilter('ip', { linkType, byteOrder, optimize: false })[1].k;
    expect(k('NULL', 'le')).toBe(0x02000000);
    expect(k('NULL', 'be')).toBe(2);
    expect(k('LOOP', 'le')).toBe(2);
    expect(k('LOOP', 'be')).toBe(2);
  });
});

describe('PacketDispatcher.create({ linkType })', () => {
  it('compiles the expressions registered on it for that link type', () => {
    const own = Arena.create({ slotSize: 4096, slotCount: 512 });
    const { vec, n } = load(own, 'sll.pcap');
    const positions = new Map(Array.from(vec.subarray(0, n), (slot, i) => [slot, i + 1]));
    for (const [expr, filterType] of [['tcp', 'bpf'], ['tcp port 8080 or udp port 5000', 'bpf'], ['ip6 and tcp', 'dpf']] as const) {
      const d = PacketDispatcher.create({ arena: own, linkType: 'LINUX_SLL', filterType, jit: false });
      const got: number[] = [];
      d.register(expr, (p: Packet) => { got.push(positions.get(p.slot)!); });
      for (let i = 0; i < n; i++) {
        own.retain(vec[i]);
        d.incoming.push(new Packet(own, vec[i]));
      }
      d.close();
      const want = fixture.results['sll.pcap'][fixture.corpus.findIndex((c) => c.expr === expr)][1].accepted!;
      expect(want.length, expr).toBeGreaterThan(0);
      expect(got, `${expr} (${filterType})`).toEqual(want);
    }
  });

  it('is ENOTSUP at register for a link type the compiler does not know', () => {
    const d = PacketDispatcher.create({ linkType: 127, jit: false });
    expect(() => d.register('tcp', () => {})).toThrow(/ENOTSUP: link type IEEE802_11_RADIO/);
    d.close();
  });
});

describe('CaptureFilter over a pcapng with Ethernet, Linux cooked and raw-IP interfaces', () => {
  // libpcap 1.10 refuses this file ("an interface has a type 113 different from the type
  // of the first interface"): each interface is judged by tcpdump on its packets alone
  // (mixed-if0/1/2.pcap, the same packets in the same order).
  const positions = () => {
    const { vec, n, reader } = loaded.get('mixed.pcapng')!;
    const counts = reader.interfaces.map(() => 0);
    const ifOf: number[] = [];
    const posOf: number[] = [];
    for (let i = 0; i < n; i++) {
      const k = arena.ifIndex(vec[i]);
      ifOf.push(k);
      posOf.push(++counts[k]);
    }
    return { vec, n, reader, ifOf, posOf };
  };

  it('filters each packet by its own interface\'s link type, as libpcap filters that interface\'s packets', () => {
    const { vec, n, reader, ifOf, posOf } = positions();
    expect(reader.interfaces.map((i) => i.linkType)).toEqual([1, 113, 101]);
    expect(new Set(ifOf).size).toBe(3);
    const diffs: string[] = [];
    let compared = 0;
    fixture.corpus.forEach(({ expr }, e) => {
      if (refused(expr)) return;
      for (const [k, optimize] of [[0, false], [1, true]] as const) {
        const wants = [0, 1, 2].map((f) => fixture.results[`mixed-if${f}.pcap`][e][k]);
        // An expression the optimizer proves empty on one link type rejects that
        // interface's packets; any other refusal is the whole filter's.
        const fatal = wants.find((w) => w.error !== undefined && w.error !== 'expression rejects all packets');
        let threw: unknown = null;
        try {
          new CaptureFilter(arena, expr, { optimize }).run(reader.interfaces, vec, n, out);
        } catch (err) {
          threw = err;
        }
        if (fatal) {
          if (!(threw instanceof NetpdError && threw.code === 'EFILTER')) diffs.push(`${expr} (optimize=${optimize}): libpcap refuses it ("${fatal.error}"), netpd did not`);
          continue;
        }
        if (threw) {
          // netpd's optimizer may prove empty for every interface what libpcap's does not.
          if (!(threw instanceof NetpdError && /rejects all/.test(threw.message) && wants.every((w) => (w.accepted?.length ?? 0) === 0))) diffs.push(`${expr}: ${String(threw)}`);
          continue;
        }
        compared++;
        for (let i = 0; i < n; i++) {
          const w = wants[ifOf[i]];
          const want = w.error === undefined && w.accepted!.includes(posOf[i]);
          if ((out[i] !== 0) !== want) diffs.push(`${expr} (optimize=${optimize}): packet ${i + 1} (interface ${ifOf[i]}) ${want ? 'rejected' : 'accepted'}`);
        }
      }
    });
    expect(compared).toBeGreaterThan(500);
    expect(diffs).toEqual([]);
  });

  it('runs a burst of one link type, and a given program on every interface as it is', () => {
    const { vec, n, reader, ifOf } = positions();
    const raw = arena.burstVector(n);
    let m = 0;
    for (let i = 0; i < n; i++) if (ifOf[i] === 2) raw[m++] = vec[i];
    const filter = new CaptureFilter(arena, 'udp');
    filter.run(reader.interfaces, raw, m, out);
    const e = fixture.corpus.findIndex((c) => c.expr === 'udp');
    expect(Array.from(out.subarray(0, m), (v, i) => (v !== 0 ? i + 1 : 0)).filter(Boolean)).toEqual(fixture.results['mixed-if2.pcap'][e][1].accepted);
    // As tcpdump on a raw-IP file: `arp` is refused there; in the mixed file it just rejects raw packets.
    const allRaw = reader.interfaces.map((iface) => ({ ...iface, linkType: 101 }));
    expect(() => new CaptureFilter(arena, 'arp').run(allRaw, raw, m, out)).toThrow(/EFILTER: expression rejects all packets/);
    new CaptureFilter(arena, 'arp').run(reader.interfaces, raw, m, out);
    expect(out.subarray(0, m).every((v) => v === 0)).toBe(true);
    // A program is the caller's word for every interface: byte 0 is 0x45 on raw IPv4 only.
    new CaptureFilter(arena, compileFilter('byte 0 = 0x45', { linkType: 'RAW' })).run(reader.interfaces, vec, n, out);
    for (let i = 0; i < n; i++) expect(out[i] !== 0, `packet ${i + 1}`).toBe(arena.bytes[arena.dataOffset(vec[i])] === 0x45 && arena.capLen(vec[i]) > 0);
  });

  it('is ENOTSUP naming the link type of an interface it cannot compile for, EINVAL for an undeclared one', () => {
    const { vec, n, reader } = positions();
    const odd = reader.interfaces.map((iface, i) => (i === 1 ? { ...iface, linkType: 127 } : iface));
    expect(() => new CaptureFilter(arena, 'tcp').run(odd, vec, n, out)).toThrow(/ENOTSUP: link type IEEE802_11_RADIO \(127\)/);
    expect(() => new CaptureFilter(arena, 'tcp').run(reader.interfaces.slice(0, 1), vec, n, out)).toThrow(/EINVAL: slot \d+ belongs to interface [12]/);
    expect(() => new CaptureFilter(arena, 'tcp and')).toThrow(/EFILTER/);
  });
});
