// DNS (print-domain.c, domain_print) at default verbosity, for UDP and TCP port 53 and
// mDNS on 5353: a query prints "id[op][+][%] [counts] TYPE? name. (len)", a response
// "id[op][rcode][*][-][|][$] an/ns/ar answers (len)", each answer as its type and data
// (A, AAAA, NS/CNAME/PTR/DNAME, MX, TXT, SRV; other types by name only, as tcpdump does
// for most of them; A6, URI, UNSPECA, TSIG and EDNS bit labels are not decoded).
//
// Names are printed as fqdn_print does: labels joined by '.', compression pointers
// followed only backwards, non-printable bytes escaped as M-x and ^x.

import { Dissection, ip6String, ipString, printableChar, tok } from './dissection.js';

const OPS = [
  '', ' inv_q', ' stat', ' op3', ' notify', ' update', ' op6', ' op7',
  ' op8', ' updateA', ' updateD', ' updateDA', ' updateM', ' updateMA', ' zoneInit', ' zoneRef',
];
const RCODES = [
  '', ' FormErr', ' ServFail', ' NXDomain', ' NotImp', ' Refused', ' YXDomain', ' YXRRSet',
  ' NXRRSet', ' NotAuth', ' NotZone', ' Resp11', ' Resp12', ' Resp13', ' Resp14', ' NoChange',
  ' BadVers', 'Resp17', ' Resp18', ' Resp19', ' Resp20', 'Resp21', ' Resp22', ' BadCookie',
];
const TYPES: ReadonlyMap<number, string> = new Map([
  [1, 'A'], [2, 'NS'], [3, 'MD'], [4, 'MF'], [5, 'CNAME'], [6, 'SOA'], [7, 'MB'], [8, 'MG'], [9, 'MR'],
  [10, 'NULL'], [11, 'WKS'], [12, 'PTR'], [13, 'HINFO'], [14, 'MINFO'], [15, 'MX'], [16, 'TXT'],
  [17, 'RP'], [18, 'AFSDB'], [19, 'X25'], [20, 'ISDN'], [21, 'RT'], [22, 'NSAP'], [23, 'NSAP_PTR'],
  [24, 'SIG'], [25, 'KEY'], [26, 'PX'], [27, 'GPOS'], [28, 'AAAA'], [29, 'LOC'], [30, 'NXT'],
  [31, 'EID'], [32, 'NIMLOC'], [33, 'SRV'], [34, 'ATMA'], [35, 'NAPTR'], [36, 'KX'], [37, 'CERT'],
  [38, 'A6'], [39, 'DNAME'], [40, 'SINK'], [41, 'OPT'], [42, 'APL'], [43, 'DS'], [44, 'SSHFP'],
  [45, 'IPSECKEY'], [46, 'RRSIG'], [47, 'NSEC'], [48, 'DNSKEY'], [99, 'SPF'], [100, 'UINFO'],
  [101, 'UID'], [102, 'GID'], [103, 'UNSPEC'], [104, 'UNSPECA'], [249, 'TKEY'], [250, 'TSIG'],
  [251, 'IXFR'], [252, 'AXFR'], [253, 'MAILB'], [254, 'MAILA'], [255, 'ANY'], [256, 'URI'],
]);
const CLASSES: ReadonlyMap<number, string> = new Map([[1, 'IN'], [3, 'CHAOS'], [4, 'HS'], [255, 'ANY']]);
const T_OPT = 41;
const MAXCDNAME = 255;

/** nd_printn: up to n characters, stopping at the end of the capture; false when cut short. */
function printn(d: Dissection, cp: number, n: number): boolean {
  while (n > 0 && cp < d.snapEnd) {
    n--;
    d.print(printableChar(d.u8(cp++)));
  }
  return n === 0;
}

/** labellen: a label's length, the pointer byte for a pointer, or -1 (after printing why). */
function labelLen(d: Dissection, cp: number): number {
  if (!d.has(cp, 1)) return -1;
  const i = d.u8(cp);
  switch (i & 0xc0) {
    case 0x40: {
      if ((i & 0x3f) !== 1) {
        d.print(`<ELT ${i & 0x3f}>`);
        return -1;
      }
      if (!d.has(cp + 1, 1)) return -1;
      const bitlen = d.u8(cp + 1) || 256;
      return Math.floor((bitlen + 7) / 8) + 1;
    }
    case 0xc0: case 0x00: return i;
    default:
      d.print('<BAD LABEL TYPE>');
      return -1;
  }
}

/** ns_nskip: the offset after the name at cp, or -1. */
function nskip(d: Dissection, cp: number): number {
  if (!d.has(cp, 1)) return -1;
  let i = d.u8(cp++);
  while (i) {
    switch (i & 0xc0) {
      case 0xc0: return cp + 1;
      case 0x40: {
        if ((i & 0x3f) !== 1 || !d.has(cp, 1)) return -1;
        const bitlen = d.u8(cp) || 256;
        cp += 1 + Math.floor((bitlen + 7) / 8);
        break;
      }
      case 0x80: return -1;
      default: cp += i;
    }
    if (!d.has(cp, 1)) return -1;
    i = d.u8(cp++);
  }
  return cp;
}

/** fqdn_print: prints the name at cp (message at bp); the offset after it, or -1. */
function fqdnPrint(d: Dissection, cp: number, bp: number): number {
  let l = labelLen(d, cp);
  if (l === -1 || !d.has(cp, 1)) return -1;
  let maxOffset = cp - bp;
  let i = d.u8(cp++);
  let compress = false;
  let rp = -1;
  if ((i & 0xc0) !== 0xc0) rp = cp + l;
  if (i === 0) {
    d.print('.');
    return rp;
  }
  let nameChars = 0;
  while (i && cp < d.snapEnd) {
    switch (i & 0xc0) {
      case 0xc0: {
        if (!compress) {
          rp = cp + 1;
          compress = true;
        }
        if (!d.has(cp, 1)) return -1;
        const offset = ((i << 8) | d.u8(cp)) & 0x3fff;
        if (offset >= maxOffset) {
          d.print('<BAD PTR>');
          return -1;
        }
        maxOffset = offset;
        cp = bp + offset;
        if (!d.has(cp, 1)) return -1;
        i = d.u8(cp);
        l = labelLen(d, cp);
        if (l === -1) return -1;
        cp++;
        continue;
      }
      case 0x40:
        return -1; // EDNS0 bit label: tcpdump's blabel_print, not decoded here
      case 0x80:
        d.print('<BAD LABEL TYPE>');
        return -1;
      default:
        if (nameChars + l <= MAXCDNAME) {
          if (!printn(d, cp, l)) return -1;
        } else if (nameChars < MAXCDNAME) {
          if (!printn(d, cp, MAXCDNAME - nameChars)) return -1;
        }
        nameChars += l;
    }
    cp += l;
    if (nameChars <= MAXCDNAME) d.print('.');
    nameChars++;
    if (!d.has(cp, 1)) return -1;
    i = d.u8(cp);
    l = labelLen(d, cp);
    if (l === -1) return -1;
    cp++;
    if (!compress) rp += l + 1;
  }
  if (nameChars > MAXCDNAME) d.print('<DOMAIN NAME TOO LONG>');
  return rp;
}

/** ns_qprint: " TYPE? name."; the offset after the question, or -1. */
function qprint(d: Dissection, cp: number, bp: number, mdns: boolean): number {
  const np = cp;
  cp = nskip(d, cp);
  if (cp === -1 || !d.has(cp, 4)) return -1;
  d.print(` ${tok(TYPES, 'Type%u', d.u16(cp))}`);
  const i = d.u16(cp + 2);
  const cls = mdns ? i & 0x7fff : i;
  if (cls !== 1) d.print(` ${tok(CLASSES, '(Class %u)', cls)}`);
  if (mdns) d.print(i & 0x8000 ? ' (QU)' : ' (QM)');
  d.print('? ');
  const end = fqdnPrint(d, np, bp);
  return end === -1 ? -1 : end + 4;
}

/** ns_rprint at default verbosity; the offset after the record, snapEnd, or -1. */
function rprint(d: Dissection, cp: number, bp: number, mdns: boolean): number {
  cp = nskip(d, cp);
  if (cp === -1 || !d.has(cp, 10)) return d.snapEnd;
  const typ = d.u16(cp);
  const i = d.u16(cp + 2);
  const cls = mdns ? i & 0x7fff : i;
  if (cls !== 1 && typ !== T_OPT) d.print(` ${tok(CLASSES, '(Class %u)', cls)}`);
  if (mdns && i & 0x8000) d.print(' (Cache flush)');
  const optFlags = typ === T_OPT ? d.u16(cp + 6) : 0;
  const len = d.u16(cp + 8);
  cp += 10;
  const rp = cp + len;
  d.print(` ${tok(TYPES, 'Type%u', typ)}`);
  if (rp > d.snapEnd) return -1;
  switch (typ) {
    case 1:
      if (!d.has(cp, 4)) return -1;
      d.print(` ${ipString(d, cp)}`);
      break;
    case 2: case 5: case 12: case 39:
      d.print(' ');
      if (fqdnPrint(d, cp, bp) === -1) return -1;
      break;
    case 15:
      d.print(' ');
      if (!d.has(cp, 2)) return -1;
      if (fqdnPrint(d, cp + 2, bp) === -1) return -1;
      d.print(` ${d.u16(cp)}`);
      break;
    case 16:
      while (cp < rp) {
        d.print(' "');
        if (!d.has(cp, 1)) return -1;
        const n = d.u8(cp++);
        if (!printn(d, cp, n)) return -1;
        cp += n;
        d.print('"');
      }
      break;
    case 33:
      d.print(' ');
      if (!d.has(cp, 6)) return -1;
      if (fqdnPrint(d, cp + 6, bp) === -1) return -1;
      d.print(`:${d.u16(cp + 4)} ${d.u16(cp)} ${d.u16(cp + 2)}`);
      break;
    case 28:
      if (!d.has(cp, 16)) return -1;
      d.print(` ${ip6String(d, cp)}`);
      break;
    case T_OPT:
      d.print(` UDPsize=${cls}`);
      if (optFlags & 0x8000) d.print(' DO');
      if (cp < rp) return -1; // EDNS options: tcpdump's eopt_print, not decoded here
      break;
    default:
      break;
  }
  return rp;
}

/** domain_print. */
export function domainPrint(d: Dissection, bp: number, length: number, overTcp: boolean, mdns: boolean): void {
  d.protocol = 'domain';
  if (overTcp) {
    if (length < 2) {
      d.print(` [DNS over TCP: length ${length} < 2] (invalid)`);
      return;
    }
    length -= 2;
    const prefix = d.u16(bp);
    if (prefix !== length) {
      d.print(` [prefix length(${prefix}) != length(${length})] (invalid)`);
      return;
    }
    bp += 2;
    d.print(' ');
  }
  if (length < 12) {
    d.print(`domain [length ${length} < 12] (invalid)`);
    return;
  }
  d.need(bp, 12);
  const flags = d.u16(bp + 2);
  let qd = d.u16(bp + 4);
  let an = d.u16(bp + 6);
  const ns = d.u16(bp + 8);
  const ar = d.u16(bp + 10);
  let rcode = flags & 0x0f;
  // Find an OPT record's extended rcode, as tcpdump does before printing.
  scan: {
    let cp = bp + 12;
    for (let k = 0; k < qd; k++) {
      cp = nskip(d, cp);
      if (cp === -1) break scan;
      cp += 4;
      if (cp >= d.snapEnd) break scan;
    }
    for (let k = 0; k < an + ns; k++) {
      cp = nskip(d, cp);
      if (cp === -1) break scan;
      cp += 8;
      if (cp + 2 > d.snapEnd) break scan;
      cp += 2 + d.u16(cp);
      if (cp >= d.snapEnd) break scan;
    }
    for (let k = 0; k < ar; k++) {
      cp = nskip(d, cp);
      if (cp === -1 || cp + 2 > d.snapEnd) break scan;
      const type = d.u16(cp);
      cp += 4;
      if (cp + 1 > d.snapEnd) break scan;
      if (type === T_OPT) {
        rcode |= d.u8(cp) << 4;
        break scan;
      }
      cp += 4;
      if (cp + 2 > d.snapEnd) break scan;
      cp += 2 + d.u16(cp);
      if (cp >= d.snapEnd) break scan;
    }
  }
  const id = d.u16(bp);
  const opcode = (flags >> 11) & 0x0f;
  let cp = bp + 12;
  if (flags & 0x8000) {
    const rc = rcode < RCODES.length ? RCODES[rcode] : ` Resp${rcode & 0xfff}`;
    d.print(`${id}${OPS[opcode]}${rc}${flags & 0x0400 ? '*' : ''}${flags & 0x0080 ? '' : '-'}${flags & 0x0200 ? '|' : ''}${flags & 0x0020 ? '$' : ''}`);
    if (qd !== 1) d.print(` [${qd}q]`);
    for (let k = 0; k < qd; k++) {
      if (k !== 0) d.print(',');
      cp = nskip(d, cp);
      if (cp === -1) return d.trunc();
      cp += 4;
    }
    d.print(` ${an}/${ns}/${ar}`);
    if (an) {
      cp = rprint(d, cp, bp, mdns);
      if (cp === -1) return d.trunc();
      an--;
      while (cp < d.snapEnd && an) {
        d.print(',');
        cp = rprint(d, cp, bp, mdns);
        if (cp === -1) return d.trunc();
        an--;
      }
    }
    if (an) return d.trunc();
  } else {
    d.print(`${id}${OPS[opcode]}${flags & 0x0100 ? '+' : ''}${flags & 0x0010 ? '%' : ''}`);
    if (flags & 0x6cf) d.print(` [b2&3=0x${flags.toString(16)}]`);
    if (opcode === 1) {
      if (qd) d.print(` [${qd}q]`);
      if (an !== 1) d.print(` [${an}a]`);
    } else {
      if (an) d.print(` [${an}a]`);
      if (qd !== 1) d.print(` [${qd}q]`);
    }
    if (ns) d.print(` [${ns}n]`);
    if (ar) d.print(` [${ar}au]`);
    if (qd) {
      cp = qprint(d, cp, bp, mdns);
      if (cp === -1) return d.trunc();
      qd--;
      while (cp < d.snapEnd && qd) {
        cp = qprint(d, cp, bp, mdns);
        if (cp === -1) return d.trunc();
        qd--;
      }
    }
    if (qd) return d.trunc();
  }
  d.print(` (${length})`);
}
