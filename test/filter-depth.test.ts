// Expressions as deep or as long as a command line allows (test/fixtures/filter-depth/
// shapes.mjs: nesting of every kind, chains of or, of +, value lists), compiled with a
// 400 KiB stack (node --stack-size=400, what a Worker or another embedder may have):
// each one compiles — unoptimized, to libpcap's very program where tcpdump accepts it —
// or is a NetpdError EFILTER/EBADPROG saying why; never a RangeError, for the BPF
// target, the optimizer, and the DPF target alike.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileFilter } from '../bindings/filter/compile.js';
import { MAX_NESTING } from '../bindings/filter/parser.js';
import { MAX_UNOPTIMIZED } from '../bindings/filter/emit.js';
import { NetpdError } from '../bindings/errors.js';
import { SHAPES, sizes, tcpdumpVerdict } from './fixtures/filter-depth/shapes.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = join(ROOT, 'test/fixtures/filter-depth');

type Verdict = { status: 'ok'; instructions: number; sha256: string } | { status: 'error'; message: string } | { status: 'timeout' };
const libpcap = JSON.parse(readFileSync(join(FIXTURES, 'libpcap.json'), 'utf8')) as { cases: Record<string, Verdict> };

type Outcome = { ok: true; instructions?: number; sha256?: string; descriptions?: number } | { ok: false; name: string; code?: string; message: string };
interface Row { n: number; bpf: Outcome; optimized: Outcome; dpf: Outcome }

// The limits netpd documents, which may refuse what libpcap accepts.
const OWN_LIMITS = new RegExp(`nests deeper than ${MAX_NESTING} levels|expression too large: .* more than the ${MAX_UNOPTIMIZED}|program the kernel refuses`);
// libpcap's own resource limits (its parser stack, memory): netpd may compile past them.
const LIBPCAP_LIMITS = /memory exhausted|out of memory/;

/** The bindings as JavaScript (TypeScript's transpileModule, no type check), for a child node to import. */
function transpileBindings(into: string): string {
  const dist = join(into, 'dist');
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  for (const file of walk(join(ROOT, 'bindings'))) {
    const out = join(dist, relative(join(ROOT, 'bindings'), file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    const js = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    writeFileSync(out, js);
  }
  // core.ts finds the WebAssembly core at ../wasm/netpd.wasm.
  symlinkSync(join(ROOT, 'wasm'), join(into, 'wasm'));
  return dist;
}

let work: string;
let dist: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'netpd-filter-depth-'));
  dist = transpileBindings(work);
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function runShape(name: string): Row[] {
  const r = spawnSync(process.execPath, ['--stack-size=400', join(FIXTURES, 'run-shape.mjs'), dist, name], { encoding: 'utf8', timeout: 110_000, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`run-shape ${name} failed (${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  return r.stdout.trim().split('\n').map((line) => JSON.parse(line) as Row);
}

/** A refusal is a NetpdError EFILTER or EBADPROG with a message; a RangeError or anything else fails. */
function expectRefusal(o: Outcome & { ok: false }, what: string): void {
  expect(o.name, `${what}: ${o.message}`).toBe('NetpdError');
  expect(['EFILTER', 'EBADPROG'], `${what}: ${o.message}`).toContain(o.code);
  expect(o.message.length).toBeGreaterThan(10);
}

describe('deep and long expressions, compiled on a 400 KiB stack', () => {
  for (const [name, shape] of Object.entries(SHAPES)) {
    it(`${name} (${sizes(shape).join(', ')}): libpcap's program or a reason, never a stack overflow`, () => {
      const rows = runShape(name);
      expect(rows.map((r) => r.n)).toEqual(sizes(shape));
      for (const { n, bpf, optimized, dpf } of rows) {
        const what = `${name}/${n}`;
        const ref = libpcap.cases[what];
        expect(ref, `${what} is in libpcap.json (run make-fixtures.mjs)`).toBeDefined();
        if (bpf.ok) {
          // Compiled: where libpcap compiles it too, the very same program.
          if (ref.status === 'ok') expect(bpf.sha256, `${what}: the -ddd text of libpcap's program`).toBe(ref.sha256);
          else if (ref.status === 'error') expect(ref.message, `${what}: libpcap refuses it for a reason other than its own limits`).toMatch(LIBPCAP_LIMITS);
        } else {
          expectRefusal(bpf, what);
          // Refused where libpcap compiles: only by a limit netpd documents.
          if (ref.status !== 'error' || LIBPCAP_LIMITS.test(ref.message)) expect(bpf.message, what).toMatch(OWN_LIMITS);
        }
        if (optimized.ok) expect(optimized.instructions).toBeGreaterThan(0);
        else expectRefusal(optimized, `${what} optimized`);
        if (dpf.ok) expect(dpf.descriptions).toBeGreaterThan(0);
        else expectRefusal(dpf, `${what} dpf`);
      }
    });
  }

  it(`names the nesting limit and where it is passed`, () => {
    let err: unknown;
    try {
      compileFilter(SHAPES.parens(MAX_NESTING + 10));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetpdError);
    expect((err as NetpdError).code).toBe('EFILTER');
    expect((err as NetpdError).message).toBe(`EFILTER: expression nests deeper than ${MAX_NESTING} levels at "(" (column ${MAX_NESTING + 2})`);
    expect((err as NetpdError).details.position).toBe(MAX_NESTING + 1);
    // One level less compiles.
    expect(compileFilter(SHAPES.parens(MAX_NESTING - 1), { optimize: false }).length).toBe(14);
  });
});

describe('programs of the largest size the kernel runs, on a 400 KiB stack', () => {
  it('validate, run (interpreted and compiled to WebAssembly), optimize, format and translate to DPF, or give a NetpdError', () => {
    const r = spawnSync(process.execPath, ['--stack-size=400', join(FIXTURES, 'run-programs.mjs'), dist], { encoding: 'utf8', timeout: 110_000 });
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { program: string; step: string; ok: boolean; detail?: { name: string; code?: string; message: string } });
    expect(lines.length).toBe(4 * 6);
    for (const { program, step, ok, detail } of lines) {
      // Only DPF may refuse (some of these have no DPF form), and only with EFILTER.
      if (!ok) expect({ program, step, name: detail!.name, code: detail!.code }).toEqual({ program, step: 'dpf', name: 'NetpdError', code: 'EFILTER' });
    }
  });
});

describe('libpcap.json', () => {
  const probe = tcpdumpVerdict('tcp');
  if (!probe) console.log('filter-depth: tcpdump is not installed; libpcap.json is used as it is, not checked afresh');
  it.skipIf(!probe)('agrees with tcpdump today on the sizes it answers quickly', () => {
    for (const [name, shape] of Object.entries(SHAPES)) {
      for (const n of sizes(shape).filter((k) => k <= 300)) {
        const fresh = tcpdumpVerdict(shape(n)) as Verdict;
        if (fresh.status === 'timeout') continue;
        expect(fresh, `${name}/${n}`).toEqual(libpcap.cases[`${name}/${n}`]);
      }
    }
  });
});
