// The state of printing one packet, modelled on tcpdump's netdissect_options.
//
// tcpdump's printers read every field through GET_* macros that compare the read against
// `snapend` (the end of the captured bytes, pulled in further by each layer that knows
// its own length: IP cuts it to ip_len, 802.3 to the length field) and, when a field lies
// past it, abandon the whole packet with a longjmp; the top level then appends
// " [|proto]", naming the protocol the printer last declared. Matching tcpdump's output
// on truncated packets means copying that control flow, so here a read past `snapEnd`
// throws TRUNCATED and the top level (index.ts) catches it and appends the same marker.
// Printers that check a length themselves first (tcpdump's ND_TTEST/ND_TCHECK) use
// `has()` and print what tcpdump prints on that path.
//
// Nothing here allocates per byte read; a Dissection lives for one packet.

import type { TcpFlows } from './tcp.js';

/** Thrown by a read past the captured bytes; caught by the line printer only. */
export const TRUNCATED: unique symbol = Symbol('truncated');

export class Dissection {
  /** The line so far (without the timestamp). */
  out = '';
  /** tcpdump's ndo_protocol: named in the " [|proto]" truncation marker. */
  protocol = '';
  /** One past the last byte that may be read (tcpdump's ndo_snapend). */
  snapEnd: number;
  private readonly snapStack: number[] = [];

  constructor(
    readonly bytes: Uint8Array,
    capLen: number,
    readonly flows: TcpFlows,
    readonly ifName: (index: number) => string | undefined,
  ) {
    this.snapEnd = Math.min(capLen, bytes.length);
  }

  print(s: string): void {
    this.out += s;
  }

  /** tcpdump's ND_TTEST_LEN: are bytes [off, off+n) captured? */
  has(off: number, n: number): boolean {
    return off >= 0 && n >= 0 && off + n <= this.snapEnd;
  }

  /** Bytes captured from `off` on (ND_BYTES_AVAILABLE_AFTER). */
  available(off: number): number {
    return Math.max(0, this.snapEnd - off);
  }

  u8(off: number): number {
    if (!this.has(off, 1)) throw TRUNCATED;
    return this.bytes[off];
  }

  u16(off: number): number {
    if (!this.has(off, 2)) throw TRUNCATED;
    return (this.bytes[off] << 8) | this.bytes[off + 1];
  }

  u32(off: number): number {
    if (!this.has(off, 4)) throw TRUNCATED;
    return ((this.bytes[off] << 24) | (this.bytes[off + 1] << 16) | (this.bytes[off + 2] << 8) | this.bytes[off + 3]) >>> 0;
  }

  /** Little-endian 32 bits (DLT_NULL's host-order family word, as written on x86). */
  u32le(off: number): number {
    if (!this.has(off, 4)) throw TRUNCATED;
    return ((this.bytes[off + 3] << 24) | (this.bytes[off + 2] << 16) | (this.bytes[off + 1] << 8) | this.bytes[off]) >>> 0;
  }

  /** Throws TRUNCATED unless [off, off+n) is captured (tcpdump's GET on a whole field). */
  need(off: number, n: number): void {
    if (!this.has(off, n)) throw TRUNCATED;
  }

  /** nd_push_snaplen: no byte past start+len may be read until popSnap(). */
  pushSnap(start: number, len: number): void {
    this.snapStack.push(this.snapEnd);
    this.snapEnd = Math.min(this.snapEnd, start + len);
  }

  popSnap(): void {
    const prev = this.snapStack.pop();
    if (prev !== undefined) this.snapEnd = prev;
  }

  /** nd_print_trunc: " [|proto]". */
  trunc(): void {
    this.out += ` [|${this.protocol}]`;
  }
}

// ------------------------------------------------------------------- address strings

const HEX = '0123456789abcdef';

/** A decimal number left-padded with zeros to n digits. */
export function pad(v: number, n: number): string {
  return String(v).padStart(n, '0');
}

function hex2(v: number): string {
  return HEX[v >> 4] + HEX[v & 15];
}

/** etheraddr_string at -n: six lowercase hex octets joined by ':' (throws TRUNCATED if not captured). */
export function macString(d: Dissection, off: number): string {
  d.need(off, 6);
  return linkAddrString(d.bytes, off, 6);
}

/** linkaddr_string: `len` octets as hex joined by ':' ("<empty>" for none). */
export function linkAddrString(b: Uint8Array, off: number, len: number): string {
  if (len === 0) return '<empty>';
  let s = hex2(b[off]);
  for (let i = 1; i < len; i++) s += ':' + hex2(b[off + i]);
  return s;
}

export function ipString(d: Dissection, off: number): string {
  d.need(off, 4);
  const b = d.bytes;
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** An IPv6 address as tcpdump's addrtostr6 writes it (longest zero run as "::", IPv4 tails). */
export function ip6String(d: Dissection, off: number): string {
  d.need(off, 16);
  const b = d.bytes;
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[off + 2 * i] << 8) | b[off + 2 * i + 1]);
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (bestLen < 2) best = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (best !== -1 && i >= best && i < best + bestLen) {
      if (i === best) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    if (i === 6 && best === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      return s + `${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
    }
    s += w[i].toString(16);
  }
  if (best !== -1 && best + bestLen === 8) s += ':';
  return s;
}

/** fn_print_char: printable ASCII as is, others as M-x / ^x. */
export function printableChar(c: number): string {
  let s = '';
  if (c > 0x7f) {
    c &= 0x7f;
    s += 'M-';
  }
  if (c < 0x20 || c === 0x7f) {
    c ^= 0x40;
    s += '^';
  }
  return s + String.fromCharCode(c);
}

/** tok2str: the name of `v` in `table`, else `fallback` with %u/%x/%04x filled in. */
export function tok(table: ReadonlyMap<number, string>, fallback: string, v: number): string {
  const name = table.get(v);
  if (name !== undefined) return name;
  return fallback
    .replace('%04x', v.toString(16).padStart(4, '0'))
    .replace('%02x', v.toString(16).padStart(2, '0'))
    .replace('%u', String(v))
    .replace('%x', v.toString(16));
}
