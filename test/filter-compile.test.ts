// The pcap-filter compiler against libpcap. Three independent checks over every
// expression of the corpora (test/fixtures/bpf and test/fixtures/filter, made from
// tcpdump and libpcap's bpf_filter by the scripts beside them):
//  1. without the optimizer, netpd's program is libpcap's, instruction for instruction;
//  2. with and without it, netpd's program accepts exactly the packets libpcap's does,
//     on every capture, run by netpd's interpreter;
//  3. (live, where gcc and libpcap-dev exist) netpd's programs run by libpcap's own
//     bpf_filter accept the same packets, so the compiler is right on its own.
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, existsSync, writeFileSync, mkdtempSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { compileFilter } from '../bindings/filter/compile.js';
import { Arena } from '../bindings/arena.js';
import { BpfFilter, formatDdd, parseDdd } from '../bindings/bpf.js';
import { loadCapture } from './support/captures.js';
import { NetpdError } from '../bindings/errors.js';

interface Case { expr: string; optimized: boolean; ddd: string; accepted: Record<string, number[]> }
interface Corpus { captures: string[]; cases: Case[] }
const root = fileURLToPath(new URL('../', import.meta.url));
const corpora = ['test/fixtures/bpf/libpcap.json', 'test/fixtures/filter/libpcap.json']
  .filter((f) => existsSync(join(root, f)))
  .map((f) => JSON.parse(readFileSync(join(root, f), 'utf8')) as Corpus);

// What netpd deliberately does not compile, and why (each must fail with EFILTER).
const REFUSED: [RegExp, string][] = [
  [/protochain/, 'libpcap loops with a backward jump, which the Linux classic BPF rules refuse'],
  [/geneve|vxlan/, 'Geneve/VXLAN need variable offsets; not supported yet'],
  [/^isis proto|decnet (host|src|dst)|^decnet [0-9]/, 'IS-IS protocol numbers and DECnet addresses are not supported'],
  [/^(ether |ip |ip6 )?proto (70000|256|300)$/, 'out of range: libpcap 1.10 compiles a test that never matches, later libpcap and netpd refuse it'],
];
const refusal = (expr: string) => REFUSED.find(([re]) => re.test(expr));

const allCases = corpora.flatMap((c) => c.cases);
const expressions = [...new Set(allCases.map((c) => c.expr))];

describe('compileFilter agrees with libpcap', () => {
  it('compiles at least 300 distinct expressions of the corpora', () => {
    expect(expressions.filter((e) => !refusal(e)).length).toBeGreaterThanOrEqual(300);
  });

  it('refuses, with EFILTER and a reason, only the documented constructs', () => {
    for (const expr of expressions.filter(refusal)) {
      expect(() => compileFilter(expr), expr).toThrow(NetpdError);
      try { compileFilter(expr); } catch (e) { expect((e as NetpdError).code).toBe('EFILTER'); }
    }
  });

  it('without the optimizer, emits libpcap\'s program instruction for instruction', () => {
    const diffs: string[] = [];
    for (const c of allCases) {
      if (c.optimized || refusal(c.expr)) continue;
      const ours = formatDdd(compileFilter(c.expr, { optimize: false }));
      if (ours !== c.ddd) diffs.push(c.expr);
    }
    expect(diffs).toEqual([]);
  });

  describe('accepts exactly the packets libpcap accepts', () => {
    const arena = Arena.create({ slotSize: 65536, slotCount: 8192, controlBytes: 128 * 1024 * 1024 });
    const out = arena.burstVector(2048);
    const loaded = new Map<string, { vec: Uint32Array; n: number }>();
    beforeAll(() => {
      for (const name of new Set(corpora.flatMap((c) => c.captures))) loaded.set(name, loadCapture(arena, name, 2048));
    });
    for (const optimized of [false, true]) {
      it(optimized ? 'with the optimizer (tcpdump\'s default)' : 'without it (tcpdump -O)', () => {
        const mismatches: string[] = [];
        for (const corpus of corpora) {
          for (const c of corpus.cases) {
            if (c.optimized !== optimized || refusal(c.expr)) continue;
            let program;
            try {
              program = compileFilter(c.expr, { optimize: optimized });
            } catch (e) {
              // Should netpd's optimizer prove a filter empty that libpcap's does not, it
              // refuses it as libpcap refuses those it proves empty. That agrees on
              // packets only if libpcap's program accepts none.
              const empty = corpus.captures.every((name) => c.accepted[name].length === 0);
              if (!(optimized && empty && /rejects all packets/.test((e as Error).message))) throw e;
              continue;
            }
            const filter = new BpfFilter(arena, program);
            for (const name of corpus.captures) {
              const { vec, n } = loaded.get(name)!;
              filter.run(vec, n, out);
              const ours: number[] = [];
              for (let i = 0; i < n; i++) if (out[i] !== 0) ours.push(i + 1);
              if (ours.join(',') !== c.accepted[name].join(',')) mismatches.push(`"${c.expr}" on ${name}`);
            }
          }
        }
        expect(mismatches).toEqual([]);
      });
    }
  });
});

const bpfrun = join(root, 'bench/native/bin/bpfrun');
const canBuild = existsSync(bpfrun) || (spawnSync('sh', ['-c', 'command -v gcc'], {}).status === 0 && existsSync('/usr/include/pcap/pcap.h'));
if (!canBuild) console.log('filter-compile: cross-execution skipped: needs gcc and libpcap-dev (apt-get install gcc libpcap-dev)');

describe.skipIf(!canBuild)('netpd\'s compiled programs run by libpcap\'s own bpf_filter', () => {
  it('accept what libpcap\'s programs accept', () => {
    if (!existsSync(bpfrun)) spawnSync('sh', [join(root, 'bench/native/build.sh')], { stdio: 'inherit' });
    const dir = mkdtempSync(join(tmpdir(), 'netpd-cross-'));
    const corpus = corpora[corpora.length - 1];
    const cases = corpus.cases.filter((c) => c.optimized && !refusal(c.expr) && corpus.captures.some((n) => c.accepted[n].length > 0));
    // Every 3rd expression keeps this under a minute on two cores.
    const mismatches: string[] = [];
    for (let i = 0; i < cases.length; i += 3) {
      const c = cases[i];
      const file = join(dir, 'p.ddd');
      writeFileSync(file, formatDdd(compileFilter(c.expr)));
      for (const name of corpus.captures) {
        const r = spawnSync(bpfrun, ['match', file, join(root, 'test/fixtures/captures', name)], { encoding: 'utf8' });
        const got = r.stdout.split('\n').filter(Boolean).map(Number);
        if (got.join(',') !== c.accepted[name].join(',')) mismatches.push(`"${c.expr}" on ${name}`);
      }
    }
    expect(mismatches).toEqual([]);
  }, 600_000);
});

interface ErrorCase { expr: string; unoptimized: { status: number; ddd?: string; message?: string }; optimized: { status: number; message?: string } }
const errorCases = existsSync(join(root, 'test/fixtures/filter/libpcap.json'))
  ? (JSON.parse(readFileSync(join(root, 'test/fixtures/filter/libpcap.json'), 'utf8')) as { errors: ErrorCase[] }).errors
  : [];

describe('compileFilter refuses what libpcap refuses', () => {
  it('for every expression libpcap rejects (without its optimizer), netpd gives EFILTER; the rest compile to libpcap\'s program', () => {
    expect(errorCases.length).toBeGreaterThanOrEqual(60);
    const disagreements: string[] = [];
    for (const e of errorCases) {
      let ours: string | null = null;
      try {
        ours = formatDdd(compileFilter(e.expr, { optimize: false }));
      } catch (err) {
        if (!(err instanceof NetpdError) || err.code !== 'EFILTER') throw err;
      }
      if (e.unoptimized.status !== 0 ? ours !== null : ours !== e.unoptimized.ddd) disagreements.push(e.expr);
    }
    expect(disagreements).toEqual([]);
  });

  it('with the optimizer, refuses at least what libpcap refuses', () => {
    const accepted: string[] = [];
    for (const e of errorCases) {
      if (e.optimized.status === 0) continue;
      try {
        compileFilter(e.expr);
        accepted.push(e.expr);
      } catch (err) {
        if (!(err instanceof NetpdError) || err.code !== 'EFILTER') throw err;
      }
    }
    expect(accepted).toEqual([]);
  });
});

describe('compileFilter on bad input', () => {
  const bad: [string, RegExp][] = [
    ['tcp port 80 and', /syntax error at the end/],
    ['(tcp', /syntax error/],
    ['tcp)', /syntax error at "\)"/],
    ['port 70000', /illegal port number 70000 > 65535/],
    ['ether proto 70000', /ether proto 70000 > 65535/],
    ['ip proto 300', /ip proto 300 > 255/],
    ['net 10.1.2.3/8', /non-network bits set in "10.1.2.3\/8"/],
    ['net 10.1.0.0 mask 255.0.0.0', /non-network bits set in "10.1.0.0 mask 255.0.0.0"/],
    ['host 10.0.0.0/8', /Mask syntax for networks only/],
    ['host www.example.com', /unknown host 'www.example.com'.*no host names/],
    ['ether host 10.0.0.1', /illegal link layer address/],
    ['ip host aa:bb:cc:dd:ee:ff', /ethernet address used in non-ether expression/],
    ['vlan 5000', /VLAN tag 5000 greater than maximum 4095/],
    ['mpls 1048576', /MPLS label 1048576 greater than maximum/],
    ['mpls and vlan', /no VLAN match after MPLS/],
    ['ip[0:3] = 1', /data size must be 1, 2, or 4/],
    ['ip[0] / 0 = 1', /division by zero/],
    ['ip[0] << 40 = 1', /shift by more than 31 bits/],
    ['tcp and 80', /syntax error/],
    ['port 80 mask 255', /syntax error/],
    ['arp proto 6', /does not encapsulate another protocol/],
    ['host 1.2.3.4.5', /unknown host '1.2.3.4.5'/],
    ['fe80::1::2', /syntax error at "fe80::1"/],
  ];
  for (const [expr, message] of bad) {
    it(`"${expr}" gives EFILTER: ${message.source}`, () => {
      let err: unknown;
      try { compileFilter(expr, { optimize: false }); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(NetpdError);
      expect((err as NetpdError).code).toBe('EFILTER');
      expect((err as NetpdError).message).toMatch(message);
    });
  }

  it('points at the offending token', () => {
    try { compileFilter('tcp and and udp'); } catch (e) { expect((e as NetpdError).details.position).toBe(8); }
  });

  it('never crashes or hangs on random input: a program or EFILTER', () => {
    const words = ['tcp', 'udp', 'ip', 'ip6', 'host', 'net', 'port', 'src', 'dst', 'and', 'or', 'not', '(', ')', '[', ']', ':',
      '10.0.0.1', '80', '0x1f', 'vlan', 'mpls', 'ether', 'proto', '\\tcp', '=', '!=', '<', '>', '&', '+', '-', '*', '/',
      'len', 'fe80::1', 'aa:bb:cc:dd:ee:ff', '/', '24', 'mask', 'portrange', '1-2', 'broadcast', 'multicast', 'less', '!'];
    fc.assert(fc.property(fc.array(fc.constantFrom(...words), { maxLength: 14 }), fc.string({ maxLength: 20 }), (toks, junk) => {
      for (const expr of [toks.join(' '), junk, toks.join('')]) {
        try {
          compileFilter(expr);
        } catch (e) {
          if (!(e instanceof NetpdError) || e.code !== 'EFILTER') throw e;
        }
      }
    }), { numRuns: 3000, seed: 42 });
  });

  it('never overflows the stack on deep nesting of any kind: a program or EFILTER', () => {
    // Each wrapper opens one level around what follows it; they mix at random, up to
    // 6,000 deep (libpcap's parser gives up near 5,000), around a primitive or a relation.
    const opens: [string, string, 'filter' | 'arith'][] = [['(', ')', 'filter'], ['not ', '', 'filter'], ['!', '', 'filter'], ['tcp or (', ')', 'filter'],
      ['(', ')', 'arith'], ['-', '', 'arith'], ['ip[', '] ', 'arith'], ['1 % ', '', 'arith'], ['1+(', ')', 'arith']];
    const wrapper = fc.constantFrom(...opens.keys());
    fc.assert(fc.property(fc.array(wrapper, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 6000 }), fc.constantFrom('tcp', 'host 10.0.0.1', 'len = 1'),
      (kinds, depth, inner) => {
        let head = '', tail = '';
        for (let i = 0; i < depth; i++) {
          const [open, close, where] = opens[kinds[i % kinds.length]];
          if (where === 'arith' && !head.startsWith('len = ')) { head = `len = ${head}`; }
          head += open;
          tail = close + tail;
        }
        const expr = head.startsWith('len = ') ? `${head}1${tail}` : `${head}${inner}${tail}`;
        for (const optimize of [false, true]) {
          try {
            compileFilter(expr, { optimize });
          } catch (e) {
            if (!(e instanceof NetpdError) || e.code !== 'EFILTER') throw e;
          }
        }
      }), { numRuns: 150, seed: 7 });
  });
});
