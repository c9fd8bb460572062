// What the verbs of the netpd command share: reading the user's own files (rules, -F
// expressions, programs) with errors that name them, turning option text into numbers
// with EINVAL naming the flag and the value, the rules given by --rule and
// --rules-file, and the stop signals. Every check here throws NetpdError, so the
// command prints `netpd: CODE: message` and exits 1; what commander itself refuses
// (an unknown flag or verb, a missing value) exits 2 (see ../cli.ts).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NetpdError, fileError } from '../errors.js';
import { parseDdd } from '../bpf.js';
import type { FilterType } from '../dispatcher.js';
import { linkTypeName, linkTypeValue } from '../filter/compile.js';
import { PcapReader } from '../pcap/index.js';
import type { Arena } from '../arena.js';
import { parseRules, type Rule } from '../bench-dispatch.js';

export const SAMPLE = fileURLToPath(new URL('../../samples/sample.pcap', import.meta.url));
const SAMPLE_RULES = fileURLToPath(new URL('../../samples/rules.json', import.meta.url));
export const BURST = 256;
/** Largest --slot-size: a GRO or jumbo frame of 64 KiB fits whole. */
export const MAX_SLOT_SIZE = 65536;

/** The text of a file the user named (`what` says which: "rules file"), or ENOENT / EISDIR / EACCES / EIO naming it. */
export function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw fileError(cause, path, `read ${what}`);
  }
}

/** A positive integer option (`-c 10`), or `fallback` when it was not given. */
export function positive(value: string | undefined, flag: string, what: string, fallback = Infinity): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new NetpdError('EINVAL', `${flag} takes a positive ${what}, got "${value}"`);
  return Number(value);
}

/** --slot-size BYTES: 64 to 65536, rounded up to a multiple of 64 (the arena's slot alignment). */
export function slotSize(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 64 && n <= MAX_SLOT_SIZE)) throw new NetpdError('EINVAL', `--slot-size takes 64 to ${MAX_SLOT_SIZE} bytes, got "${value}"`);
  return Math.ceil(n / 64) * 64;
}

/** -y LINKTYPE: libpcap's name (EN10MB, LINUX_SLL, ...) or a LINKTYPE number. */
export function linkType(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  return linkTypeValue(value);
}

/**
 * A capture's first link type (Ethernet when a pcapng declares none before its first
 * packet) and byte order (NULL's header is in the writer's).
 */
export function firstLinkType(reader: PcapReader): { linkType: number; byteOrder: 'le' | 'be' } {
  return { linkType: reader.linkType < 0 ? 1 : reader.linkType, byteOrder: reader.byteOrder };
}

export function fileLinkType(file: string): { linkType: number; byteOrder: 'le' | 'be' } {
  const reader = PcapReader.open(file);
  try {
    return firstLinkType(reader);
  } finally {
    reader.close();
  }
}

/** The link types of a capture's interfaces, by libpcap's names: "EN10MB, LINUX_SLL". */
export function linkTypeNames(reader: PcapReader): string {
  return [...new Set(reader.interfaces.map((i) => linkTypeName(i.linkType)))].join(', ');
}

/** What `run` and `bench dispatch` share: the filter type and whether to compile to WebAssembly. */
export interface DispatchChoice {
  filterType: FilterType;
  jit: boolean;
}

export function dispatchChoice(values: { filterType?: string; jit?: boolean }): DispatchChoice {
  const filterType = values.filterType ?? 'bpf';
  if (filterType !== 'bpf' && filterType !== 'dpf') throw new NetpdError('EINVAL', `--filter-type takes bpf or dpf, got "${filterType}"`);
  return { filterType, jit: values.jit !== false };
}

/** --rule NAME=EXPR, or NAME=@FILE.ddd for a tcpdump -ddd program. */
export function parseRule(spec: string): Rule {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new NetpdError('EINVAL', `--rule takes NAME=EXPR, got "${spec}"`);
  const desc = spec.slice(eq + 1);
  return { name: spec.slice(0, eq), description: desc.startsWith('@') ? parseDdd(readText(desc.slice(1), 'program file')) : desc };
}

/** The rules of --rule and --rules-file, in that order (parseRules reads the file). */
export function givenRules(specs: readonly string[] | undefined, file: string | undefined): Rule[] | undefined {
  if (specs === undefined && file === undefined) return undefined;
  const rules = (specs ?? []).map(parseRule);
  if (file !== undefined) {
    const fromFile = parseRules(readText(file, 'rules file'));
    if (fromFile.length === 0) throw new NetpdError('EINVAL', `the rules file has no rules: ${file} (one NAME=EXPR or EXPR a line, # comments)`);
    rules.push(...fromFile);
  }
  return rules;
}

// The bundled sample's rules are expressions; netpd compiles them itself.
export function sampleRules(): Rule[] {
  const rules = JSON.parse(readText(SAMPLE_RULES, 'sample rules')) as { name: string; expr: string }[];
  return rules.map((r) => ({ name: r.name, description: r.expr }));
}

/**
 * The filter expression: the words after the options, or the text of -F FILE, where, as
 * in tcpdump, `#` starts a comment that runs to the end of its line. Giving both is refused
 * (tcpdump ignores the words). Empty when neither was given.
 */
export function expression(words: readonly string[], file: string | undefined): string {
  if (file === undefined) return words.join(' ');
  if (words.length > 0) throw new NetpdError('EINVAL', `give the expression in -F ${file} or on the command line ("${words.join(' ')}"), not both`);
  return readText(file, 'expression file').replace(/#[^\n]*/g, ' ').trim();
}

/** Calls `stop` on SIGINT or SIGTERM; the returned function removes the handlers. */
export function onStopSignal(stop: () => void): () => void {
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  };
}

// Like tcpdump, -r - reads the capture from standard input (a file, pipe or socket).
export function openCapture(file: string, arena: Arena): PcapReader {
  return file === '-' ? PcapReader.fromFd(0, 'standard input', { arena }) : PcapReader.open(file, { arena });
}

/** Slots for `bytes` of arena data at the given slot size, between `min` and `max`. */
export function slotsFor(bytes: number, size: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.floor(bytes / size)));
}

/**
 * Reads bursts until the end, a stop, or damage: `each(vec, n)` gets every burst (its
 * slots are freed after the call). A reader error (EPCAP at byte N, ENOTSUP) comes back
 * as `failure` after the packets before it were handled, so the caller can report them
 * first, as tcpdump prints the packets before a cut and then warns.
 */
export async function readAll(reader: PcapReader, arena: Arena, options: { limit: number; stopped: () => boolean; each: (vec: Uint32Array, n: number) => number | void; tick?: () => void }): Promise<{ packets: number; failure?: unknown }> {
  const vec = arena.burstVector(BURST);
  let packets = 0;
  let bursts = 0;
  try {
    while (!options.stopped() && packets < options.limit) {
      const n = reader.readBurst(vec, Math.min(BURST, options.limit - packets));
      if (n === 0) break;
      try {
        const counted = options.each(vec, n);
        packets += typeof counted === 'number' ? counted : n;
      } finally {
        arena.freeBurst(vec, n);
      }
      // Every 64 bursts, let signals (and the progress bar) in.
      if ((++bursts & 63) === 0) {
        options.tick?.();
        await new Promise((r) => setImmediate(r));
      }
    }
  } catch (failure) {
    if (!(failure instanceof NetpdError)) throw failure;
    return { packets, failure };
  }
  return { packets };
}
