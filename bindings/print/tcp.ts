// TCP (print-tcp.c, tcp_print) at default verbosity.
//
// Relative sequence numbers are tcpdump's per-run state: for each connection (its
// addresses and ports, put in one canonical order so both directions share an entry)
// tcpdump remembers the sequence and acknowledgement numbers of the first packet with
// ACK set that it sees, or of the latest SYN with ACK set, and prints later packets'
// numbers relative to those. That first packet prints absolute numbers. Packets without
// ACK (a bare SYN, a bare RST) never touch the state. TcpFlows holds that table for one
// PacketPrinter; it is unbounded, like tcpdump's.
//
// Payload printers: tcpdump names the application for some well-known ports; here the
// text protocols (HTTP on 80/8080, FTP, SMTP, whois, RTSP) print as tcpdump prints them
// at default verbosity, the SSH version banner and DNS over TCP (port 53) too, and other
// ports print nothing after "length N" (tcpdump decodes telnet, BGP, SMB, ...).

import { Dissection } from './dissection.js';
import { domainPrint } from './dns.js';
import { IpHeader, addressPair } from './ip.js';

const FLAG_CHARS: readonly [number, string][] = [
  [0x01, 'F'], [0x02, 'S'], [0x04, 'R'], [0x08, 'P'], [0x10, '.'], [0x20, 'U'], [0x40, 'E'], [0x80, 'W'],
];
const TH_FIN = 0x01, TH_SYN = 0x02, TH_RST = 0x04, TH_ACK = 0x10, TH_URG = 0x20;

const OPTION_NAMES: ReadonlyMap<number, string> = new Map([
  [0, 'eol'], [1, 'nop'], [2, 'mss'], [3, 'wscale'], [4, 'sackOK'], [5, 'sack'], [6, 'echo'],
  [7, 'echoreply'], [8, 'TS'], [11, 'cc'], [12, 'ccnew'], [13, ''], [19, 'md5'], [20, 'scps'],
  [28, 'uto'], [29, 'tcp-ao'], [30, 'mptcp'], [34, 'tfo'], [254, 'exp'],
]);

/** The sequence bases of one connection, as tcpdump's tcp_seq_hash entry holds them. */
interface FlowBase {
  seq: number;
  ack: number;
}

/** tcpdump's tcp_seq_hash4/6: the relative-numbering state of one printer run. */
export class TcpFlows {
  private readonly flows = new Map<string, FlowBase>();

  lookup(key: string): FlowBase | undefined {
    return this.flows.get(key);
  }

  store(key: string, base: FlowBase): void {
    this.flows.set(key, base);
  }
}

/** Compares two address byte ranges as memcmp does. */
function compareBytes(b: Uint8Array, a: number, c: number, n: number): number {
  for (let i = 0; i < n; i++) if (b[a + i] !== b[c + i]) return b[a + i] - b[c + i];
  return 0;
}

function hexBytes(b: Uint8Array, off: number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += b[off + i].toString(16).padStart(2, '0');
  return s;
}

/** tcp_print: `off` is the TCP header, `length` the TCP segment length from the IP layer. */
export function tcpPrint(d: Dissection, off: number, length: number, ip: IpHeader): void {
  d.protocol = 'tcp';
  if (!d.has(off + 2, 2)) {
    const [src, dst] = addressPair(d, ip);
    d.print(`${src} > ${dst}:`);
    d.trunc();
    return;
  }
  const sport = d.u16(off);
  const dport = d.u16(off + 2);
  if (ip.headerProto === 6) {
    const [src, dst] = addressPair(d, ip);
    d.print(`${src}.${sport} > ${dst}.${dport}: `);
  } else {
    d.print(`${sport} > ${dport}: `);
  }
  if (!d.has(off, 20)) {
    d.trunc();
    return;
  }
  let hlen = (d.u8(off + 12) >> 4) * 4;
  if (hlen < 20) {
    d.print(` tcp ${length - hlen} [bad hdr length ${hlen} - too short, < 20]`);
    return;
  }
  let seq = d.u32(off + 4);
  let ack = d.u32(off + 8);
  const win = d.u16(off + 14);
  const urp = d.u16(off + 18);
  const flags = d.u8(off + 13);
  let flagStr = '';
  for (const [bit, c] of FLAG_CHARS) if (flags & bit) flagStr += c;
  d.print(`Flags [${flagStr || 'none'}]`);

  let thseq = 0, thack = 0, rev = false;
  if (flags & TH_ACK) {
    const alen = ip.version === 4 ? 4 : 16;
    const srcOff = ip.off + (ip.version === 4 ? 12 : 8);
    const dstOff = srcOff + alen;
    if (sport > dport) rev = true;
    else if (sport === dport && compareBytes(d.bytes, srcOff, dstOff, alen) > 0) rev = true;
    const key = rev
      ? `${ip.version}/${hexBytes(d.bytes, dstOff, alen)}/${hexBytes(d.bytes, srcOff, alen)}/${dport}/${sport}`
      : `${ip.version}/${hexBytes(d.bytes, srcOff, alen)}/${hexBytes(d.bytes, dstOff, alen)}/${sport}/${dport}`;
    let base = d.flows.lookup(key);
    if (!base || (flags & TH_SYN)) {
      base = rev ? { ack: seq, seq: (ack - 1) >>> 0 } : { seq, ack: (ack - 1) >>> 0 };
      d.flows.store(key, base);
    } else if (rev) {
      seq = (seq - base.ack) >>> 0;
      ack = (ack - base.seq) >>> 0;
    } else {
      seq = (seq - base.seq) >>> 0;
      ack = (ack - base.ack) >>> 0;
    }
    thseq = base.seq;
    thack = base.ack;
  }
  if (hlen > length) {
    d.print(` [bad hdr length ${hlen} - too long, > ${length}]`);
    return;
  }
  length -= hlen;
  if (length > 0 || (flags & (TH_SYN | TH_FIN | TH_RST))) {
    d.print(`, seq ${seq}`);
    if (length > 0) d.print(`:${(seq + length) >>> 0}`);
  }
  if (flags & TH_ACK) d.print(`, ack ${ack}`);
  d.print(`, win ${win}`);
  if (flags & TH_URG) d.print(`, urg ${urp}`);
  if (hlen > 20 && !printOptions(d, off + 20, hlen - 20, rev ? thseq : thack, off + hlen + length)) return;
  d.print(`, length ${length}`);
  if (length === 0) return;
  const headerLen = (d.u8(off + 12) >> 4) * 4;
  if (!d.has(off, headerLen)) {
    d.print(` [remaining caplen(${d.available(off)}) < header length(${headerLen})]`);
    d.trunc();
    return;
  }
  payloadPrint(d, off + headerLen, length, sport, dport);
}

/**
 * The ", options [...]" part; false when tcpdump stops the line inside it (a bad or
 * truncated option), after printing what it prints there.
 */
function printOptions(d: Dissection, cp: number, hlen: number, sackBase: number, payloadEnd: number): boolean {
  d.print(', options [');
  let sep = '';
  while (hlen > 0) {
    d.print(sep);
    const opt = d.u8(cp++);
    let len: number;
    if (opt === 0 || opt === 1) {
      len = 1;
    } else {
      len = d.u8(cp++);
      if (len < 2 || len > hlen) return badOption(d, sep);
      hlen--;
    }
    hlen--;
    let datalen = 0;
    // LENCHECK: beyond the header is a bad option, beyond the capture a truncation.
    const lencheck = (l: number): number => {
      if (l > hlen) return -1;
      if (!d.has(cp, l)) return -2;
      return 0;
    };
    const fail = (r: number): boolean => (r === -1 ? badOption(d, sep) : truncOption(d, sep));
    d.print(OPTION_NAMES.get(opt) ?? `unknown-${opt}`);
    switch (opt) {
      case 2: case 3: {
        datalen = opt === 2 ? 2 : 1;
        const r = lencheck(datalen);
        if (r) return fail(r);
        d.print(` ${opt === 2 ? d.u16(cp) : d.u8(cp)}`);
        break;
      }
      case 5: {
        datalen = len - 2;
        if (datalen % 8 !== 0) {
          d.print(' invalid sack');
        } else {
          d.print(` ${datalen / 8} `);
          for (let i = 0; i < datalen; i += 8) {
            let r = lencheck(i + 4);
            if (r) return fail(r);
            const s = d.u32(cp + i);
            r = lencheck(i + 8);
            if (r) return fail(r);
            const e = d.u32(cp + i + 4);
            d.print(`{${(s - sackBase) >>> 0}:${(e - sackBase) >>> 0}}`);
          }
        }
        break;
      }
      case 6: case 7: case 11: case 12: case 13: {
        datalen = 4;
        const r = lencheck(datalen);
        if (r) return fail(r);
        d.print(` ${d.u32(cp)}`);
        break;
      }
      case 8: {
        datalen = 8;
        const r = lencheck(datalen);
        if (r) return fail(r);
        d.print(` val ${d.u32(cp)} ecr ${d.u32(cp + 4)}`);
        break;
      }
      case 0: case 1: case 4:
        break;
      case 28: {
        datalen = 2;
        const r = lencheck(datalen);
        if (r) return fail(r);
        let uto = d.u16(cp);
        d.print(` 0x${uto.toString(16)}`);
        uto = uto & 1 ? (uto >> 1) * 60 : uto >> 1;
        d.print(` ${uto}`);
        break;
      }
      case 19: {
        // TCP-MD5: tcpdump (built with OpenSSL) cannot check it without -M and says why.
        datalen = 16;
        const r = lencheck(datalen);
        if (r) return fail(r);
        d.print(payloadEnd > d.snapEnd ? ' snaplen too short, ' : ' shared secret not supplied with -M, ');
        d.print(`can't check - ${hexBytes(d.bytes, cp, 16)}`);
        break;
      }
      case 20: {
        datalen = 2;
        const r = lencheck(datalen);
        if (r) return fail(r);
        d.print(` cap ${d.u8(cp).toString(16).padStart(2, '0')} id ${d.u8(cp + 1)}`);
        break;
      }
      case 29: {
        datalen = len - 2;
        if (datalen < 2) {
          d.print(' (invalid)');
          break;
        }
        let r = lencheck(1);
        if (r) return fail(r);
        d.print(` keyid ${d.u8(cp)}`);
        r = lencheck(2);
        if (r) return fail(r);
        d.print(` rnextkeyid ${d.u8(cp + 1)}`);
        if (datalen > 2) {
          d.print(' mac 0x');
          for (let i = 2; i < datalen; i++) {
            r = lencheck(i + 1);
            if (r) return fail(r);
            d.print(d.u8(cp + i).toString(16).padStart(2, '0'));
          }
        }
        break;
      }
      default: {
        // mptcp, tfo and exp have their own formats in tcpdump, not ported here;
        // this is its format for an option it does not know: the data in hex.
        datalen = len - 2;
        if (datalen) d.print(' 0x');
        for (let i = 0; i < datalen; i++) {
          const r = lencheck(i + 1);
          if (r) return fail(r);
          d.print(d.u8(cp + i).toString(16).padStart(2, '0'));
        }
      }
    }
    cp += datalen;
    hlen -= datalen;
    datalen += opt === 0 || opt === 1 ? 1 : 2;
    if (datalen !== len) d.print(`[len ${len}]`);
    sep = ',';
    if (opt === 0) break;
  }
  d.print(']');
  return true;
}

function badOption(d: Dissection, sep: string): boolean {
  d.print('[bad opt]');
  if (sep) d.print(']');
  return false;
}

function truncOption(d: Dissection, sep: string): boolean {
  d.trunc();
  if (sep) d.print('>');
  return false;
}

// The request words of tcpdump's HTTP printer (print-http.c), for deciding whether a
// segment starts a request (or, by a 3-digit second token, a response).
const HTTP_CMDS = ['GET', 'PUT', 'COPY', 'HEAD', 'LOCK', 'MOVE', 'POLL', 'POST', 'BCOPY', 'BMOVE',
  'MKCOL', 'TRACE', 'LABEL', 'MERGE', 'DELETE', 'SEARCH', 'UNLOCK', 'REPORT', 'UPDATE', 'NOTIFY',
  'BDELETE', 'CONNECT', 'OPTIONS', 'CHECKIN', 'PROPFIND', 'CHECKOUT', 'CCM_POST', 'SUBSCRIBE',
  'PROPPATCH', 'BPROPFIND', 'BPROPPATCH', 'UNCHECKOUT', 'MKACTIVITY', 'MKWORKSPACE', 'UNSUBSCRIBE',
  'RPC_CONNECT', 'VERSION-CONTROL', 'BASELINE-CONTROL'];
const RTSP_CMDS = ['DESCRIBE', 'ANNOUNCE', 'GET_PARAMETER', 'OPTIONS', 'PAUSE', 'PLAY', 'RECORD',
  'REDIRECT', 'SETUP', 'SET_PARAMETER', 'TEARDOWN'];

/**
 * The payload printers by port, in tcpdump's order (the first port that matches either
 * end wins); null for the printers not ported here (PPTP, redis, BEEP, OpenFlow, and
 * MSDP, RPKI-RTR, LDP after DNS), which print nothing after "length N" here. NBT and SMB
 * print nothing in tcpdump either (it is built without its SMB printer).
 */
const PAYLOAD_PRINTERS: readonly [readonly number[], ((d: Dissection, off: number, length: number) => void) | null][] = [
  [[23], telnetPrint],
  [[25], (d, off, length) => textLine(d, off, length, 'smtp', null)],
  [[43], (d, off, length) => textLine(d, off, length, 'whois', null)],
  [[179], bgpPrint], [[1723], null], [[6379], null],
  [[22], sshPrint],
  [[139], null], [[445], null], [[10288], null], [[6633, 6653], null],
  [[21], (d, off, length) => textLine(d, off, length, 'ftp', null)],
  [[80, 8080], (d, off, length) => textLine(d, off, length, 'http', HTTP_CMDS)],
  [[554, 8554], (d, off, length) => textLine(d, off, length, 'rtsp', RTSP_CMDS)],
  [[53], (d, off, length) => domainPrint(d, off, length, true, false)],
];

function payloadPrint(d: Dissection, off: number, length: number, sport: number, dport: number): void {
  const entry = PAYLOAD_PRINTERS.find(([ports]) => ports.includes(sport) || ports.includes(dport));
  entry?.[1]?.(d, off, length);
}

/**
 * telnet_print: tcpdump prints the Telnet commands (IAC ...) that start a segment; they
 * are not decoded here. What is kept is its first read, so a segment whose data was not
 * captured ends in " [|telnet]" as in tcpdump.
 */
function telnetPrint(d: Dissection, p: number, length: number): void {
  d.protocol = 'telnet';
  if (length > 0) d.u8(p);
}

/** bgp_print at default verbosity: the protocol's name only. */
function bgpPrint(d: Dissection): void {
  d.protocol = 'bgp';
  d.print(': BGP');
}

/** ssh_print: the version banner ("SSH-2.0-...") when the segment starts with one. */
function sshPrint(d: Dissection, p: number, len: number): void {
  d.protocol = 'ssh';
  for (let i = 0; i < 4; i++) if (d.u8(p + i) !== 'SSH-'.charCodeAt(i)) return;
  for (let idx = 4; idx < len; idx++) {
    const c = d.u8(p + idx);
    if (c === 0x0a || (c === 0x0d && idx + 1 < len && d.u8(p + idx + 1) === 0x0a)) {
      let banner = '';
      for (let i = 0; i < idx; i++) banner += String.fromCharCode(d.bytes[p + i]);
      d.print(`: SSH: ${banner}`);
      return;
    }
    if (c === 0x0d || !isPrint(c)) return;
  }
}

function textLine(d: Dissection, off: number, length: number, name: string, cmds: readonly string[] | null): void {
  d.print(': ');
  txtprotoPrint(d, off, length, name, cmds);
}

const isPrint = (c: number): boolean => c >= 0x20 && c < 0x7f;

/** fetch_token: the token at idx (or null) and the index after it and the blanks that follow. */
function fetchToken(d: Dissection, p: number, idx: number, len: number): { token: string; next: number } | null {
  let token = '';
  for (; idx < len; idx++) {
    if (!d.has(p + idx, 1)) return null;
    const c = d.u8(p + idx);
    if (c > 0x7f) return null;
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) break;
    if (!isPrint(c)) return null;
    if (token.length + 2 > 129) return null; // tcpdump's MAX_TOKEN + 1 buffer
    token += String.fromCharCode(c);
  }
  if (token.length === 0) return null;
  for (; idx < len; idx++) {
    if (!d.has(p + idx, 1)) break;
    const c = d.u8(p + idx);
    if (c === 0x0d || c === 0x0a) break;
    if (!(c === 0x20 || c === 0x09)) break;
  }
  return { token, next: idx };
}

/** txtproto_print at default verbosity: the protocol name in capitals, then ": <first line>". */
function txtprotoPrint(d: Dissection, p: number, len: number, name: string, cmds: readonly string[] | null): void {
  let printThis = cmds === null;
  if (cmds !== null) {
    const first = fetchToken(d, p, 0, len);
    if (first) {
      if (cmds.some((c) => c.toLowerCase() === first.token.toLowerCase())) printThis = true;
      else {
        const second = fetchToken(d, p, first.next, len);
        if (second && /^[0-9]{3}$/.test(second.token)) printThis = true;
      }
    }
  }
  d.protocol = name;
  d.print(name.toUpperCase());
  if (printThis) printTxtLine(d, ': ', p, 0, len);
}

/** print_txt_line: one CRLF- or LF-terminated printable line, or nothing. */
function printTxtLine(d: Dissection, prefix: string, p: number, idx: number, len: number): void {
  const start = idx;
  let lineLen: number;
  for (;;) {
    if (idx >= len) {
      // Printable to the end of the data with no line end: printed, then marked truncated.
      let s = prefix;
      for (let i = start; i < idx; i++) s += String.fromCharCode(d.bytes[p + i]);
      d.print(s);
      d.trunc();
      return;
    }
    const c = d.u8(p + idx);
    if (c === 0x0a) {
      lineLen = idx - start;
      break;
    }
    if (c === 0x0d) {
      if (idx + 1 >= len) return;
      if (d.u8(p + idx + 1) === 0x0a) {
        lineLen = idx - start;
        break;
      }
      return;
    }
    if (!isPrint(c) && c !== 0x09) return;
    idx++;
  }
  let s = prefix;
  for (let i = 0; i < lineLen; i++) s += String.fromCharCode(d.bytes[p + start + i]);
  d.print(s);
}
