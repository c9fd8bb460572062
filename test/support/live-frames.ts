// Helpers for the live AF_PACKET tests (test/afpacket-*.test.ts): copying frames out of
// the arena as a source delivers them, reading tcpdump's files, comparing the two, and
// waiting for asynchronous delivery without fixed sleeps.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Arena } from '../../bindings/index.js';
import { PcapReader } from '../../bindings/index.js';
import { labSkipReason, toolSkipReason } from './netns.mjs';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const capturePath = (name: string) => fileURLToPath(new URL(`../fixtures/captures/${name}`, import.meta.url));
export const samplePath = fileURLToPath(new URL('../../samples/sample.pcap', import.meta.url));
export const cliPath = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** One frame, copied out of wherever it was (arena slot or capture file). */
export interface Frame {
  data: Buffer;
  capLen: number;
  wireLen: number;
  sec: number;
  nsec: number;
  /** The slot's ifIndex (arena frames only; -1 for file frames). */
  ifIndex: number;
  /** The slot's flags (arena frames only). */
  flags: number;
}

/**
 * Why the live tests of `file` cannot run here (not root, no namespaces, a tool
 * missing), printed as `<file>: skipped: <reason>`; null when they can.
 */
export function liveSkipReason(file: string, tools: string[]): string | null {
  let reason = labSkipReason();
  for (const t of tools) reason ??= toolSkipReason(t);
  if (reason) console.log(`${file}: skipped: ${reason}`);
  return reason;
}

/** Copies one slot out of the arena. */
export function copySlot(arena: Arena, slot: number): Frame {
  const off = arena.dataOffset(slot);
  const capLen = arena.capLen(slot);
  return {
    data: Buffer.from(arena.bytes.subarray(off, off + capLen)),
    capLen,
    wireLen: arena.wireLen(slot),
    sec: arena.timestampSec(slot),
    nsec: arena.timestampNsec(slot),
    ifIndex: arena.ifIndex(slot),
    flags: arena.flags(slot),
  };
}

/** An onBurst callback that copies every delivered frame into `frames`. */
export function collector(arena: Arena): { frames: Frame[]; onBurst: (vec: Uint32Array, n: number) => void } {
  const frames: Frame[] = [];
  return { frames, onBurst: (vec, n) => { for (let i = 0; i < n; i++) frames.push(copySlot(arena, vec[i])); } };
}

/** Every frame of a capture file. */
export function readFrames(path: string): Frame[] {
  return PcapReader.readAllFromFile(path).map((p) => ({
    data: Buffer.from(p.data), capLen: p.capLen, wireLen: p.wireLen, sec: p.sec, nsec: p.nsec, ifIndex: -1, flags: 0,
  }));
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every few ms until it holds (true) or `timeoutMs` passes (false). */
export async function waitFor(cond: () => boolean, timeoutMs = 5000, stepMs = 5): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > end) return false;
    await delay(stepMs);
  }
}

/**
 * Waits until `count()` reaches `want`, then a little longer to see that nothing more
 * arrives (a ring block timeout is 2 ms; 60 ms is many of them). Returns the final count.
 */
export async function settleAt(count: () => number, want: number, timeoutMs = 5000): Promise<number> {
  await waitFor(() => count() >= want, timeoutMs);
  await delay(60);
  return count();
}

export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Counts of each distinct byte string. */
export function multiset(frames: { data: Uint8Array }[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const f of frames) { const k = hex(f.data); m.set(k, (m.get(k) ?? 0) + 1); }
  return m;
}

/**
 * The frames of `a` not matched by one of `b` (and the other way round), as
 * multisets of bytes: empty both ways when the two hold the same frames.
 */
export function multisetDiff(a: { data: Uint8Array }[], b: { data: Uint8Array }[]): { onlyA: string[]; onlyB: string[] } {
  const ma = multiset(a);
  const mb = multiset(b);
  const onlyA: string[] = [];
  const onlyB: string[] = [];
  for (const [k, n] of ma) for (let i = (mb.get(k) ?? 0); i < n; i++) onlyA.push(k);
  for (const [k, n] of mb) for (let i = (ma.get(k) ?? 0); i < n; i++) onlyB.push(k);
  return { onlyA, onlyB };
}

/**
 * Pairs each frame of `ours` with an unused frame of `theirs` that has the same bytes,
 * the closest in time; returns the pairs (frames without a partner are left out, so
 * compare the counts first).
 */
export function pairByBytes(ours: Frame[], theirs: Frame[]): [Frame, Frame][] {
  const pool = new Map<string, Frame[]>();
  for (const f of theirs) {
    const k = hex(f.data);
    const list = pool.get(k);
    if (list) list.push(f); else pool.set(k, [f]);
  }
  const pairs: [Frame, Frame][] = [];
  for (const f of ours) {
    const list = pool.get(hex(f.data));
    if (!list || list.length === 0) continue;
    let best = 0;
    for (let i = 1; i < list.length; i++) if (Math.abs(nsDiff(list[i], f)) < Math.abs(nsDiff(list[best], f))) best = i;
    pairs.push([f, list[best]]);
    list.splice(best, 1);
  }
  return pairs;
}

/** a − b in nanoseconds (as a double: exact enough for differences under ~100 days). */
export const nsDiff = (a: { sec: number; nsec: number }, b: { sec: number; nsec: number }) => (a.sec - b.sec) * 1e9 + (a.nsec - b.nsec);

/** The source MAC of an Ethernet frame, as aa:bb:... */
export const srcMac = (f: { data: Uint8Array }) => [...f.data.subarray(6, 12)].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** The outer ethertype (bytes 12..13), or -1 for a runt. */
export const etherType = (f: { data: Uint8Array }) => (f.data.length >= 14 ? (f.data[12] << 8) | f.data[13] : -1);

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli.js ARGS`, killing it (SIGKILL) after timeoutMs. */
export function runCli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/** The last line of a command's output, parsed as JSON. */
export const lastJson = <T>(out: string): T => JSON.parse(out.trim().split('\n').pop() ?? '') as T;

/** Frames in a capture file tcpdump is still writing (-U): 0 while its tail is half written. */
function framesSoFar(path: string): number {
  try {
    return PcapReader.readAllFromFile(path).length;
  } catch {
    return 0;
  }
}

/** Waits until tcpdump has written at least n frames to its file (true), or timeoutMs passes (false). */
export function waitForFile(path: string, n: number, timeoutMs = 5000): Promise<boolean> {
  return waitFor(() => framesSoFar(path) >= n, timeoutMs, 20);
}

/**
 * Receive options for tests that replay thousands of frames and compare counts with
 * tcpdump. With the defaults a TPACKET_V3 ring is 32 blocks of 1 MiB, each handed over
 * after 2 ms however little it holds, so at a few 10 kpps the ring is full after the
 * event loop stalls for ~64 ms — which a loaded 2-core machine running two test files
 * does now and then — and the kernel drops frames (counted, but then the counts differ
 * from tcpdump's). A 20 ms block timeout makes that 640 ms. The defaults are held to
 * this in afpacket-receive's "rides out a stall" test, which fails while they do not.
 */
export const STALL_TOLERANT = { blockTimeoutMs: 20 } as const;
