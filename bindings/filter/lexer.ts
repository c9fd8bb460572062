// The pcap-filter scanner, after libpcap's scanner.l: keywords, numbers (decimal, 0x
// hex, 0-prefixed octal), dotted IPv4 (1 to 4 parts), IPv6, MAC addresses in the
// usual spellings, the named constants (tcpflags, icmp-echo, ...), and identifiers
// (with a leading backslash to force a name, as in `proto \tcp`). Every token keeps
// its column so errors can point at it.

import { NetpdError } from '../errors.js';

export type TokenKind =
  | 'kw' | 'num' | 'hid' | 'hid6' | 'eid' | 'id'
  | '(' | ')' | '[' | ']' | ':' | '/' | '+' | '-' | '*' | '%' | '&' | '|' | '^'
  | '<<' | '>>' | '>' | '>=' | '<' | '<=' | '=' | '!=' | '!' | '&&' | '||' | 'eof';

export interface Token {
  kind: TokenKind;
  text: string;
  /** For 'kw': the canonical keyword; for 'num': the value. */
  value: string | number;
  pos: number;
}

// Keywords and their canonical form (aliases map to one name).
const KEYWORDS: Record<string, string> = {
  dst: 'dst', src: 'src', host: 'host', gateway: 'gateway', net: 'net', mask: 'mask',
  port: 'port', portrange: 'portrange', proto: 'proto', protochain: 'protochain',
  arp: 'arp', rarp: 'rarp', ip: 'ip', sctp: 'sctp', tcp: 'tcp', udp: 'udp', icmp: 'icmp', igmp: 'igmp',
  igrp: 'igrp', pim: 'pim', vrrp: 'vrrp', carp: 'carp', radio: 'radio',
  ip6: 'ip6', icmp6: 'icmp6', ah: 'ah', esp: 'esp',
  atalk: 'atalk', aarp: 'aarp', decnet: 'decnet', lat: 'lat', sca: 'sca', moprc: 'moprc', mopdl: 'mopdl',
  iso: 'iso', esis: 'esis', 'es-is': 'esis', isis: 'isis', 'is-is': 'isis', l1: 'l1', l2: 'l2',
  iih: 'iih', lsp: 'lsp', snp: 'snp', csnp: 'csnp', psnp: 'psnp', clnp: 'clnp', stp: 'stp', ipx: 'ipx', netbeui: 'netbeui',
  link: 'link', ether: 'link', ppp: 'link', slip: 'link', fddi: 'link', tr: 'link', wlan: 'link',
  broadcast: 'broadcast', multicast: 'multicast',
  and: 'and', or: 'or', not: 'not',
  len: 'len', length: 'len', less: 'less', greater: 'greater', byte: 'byte',
  inbound: 'inbound', outbound: 'outbound', ifindex: 'ifindex',
  vlan: 'vlan', mpls: 'mpls', pppoed: 'pppoed', pppoes: 'pppoes', geneve: 'geneve', vxlan: 'vxlan',
  llc: 'llc',
};

// Named numbers from scanner.l.
const NAMED: Record<string, number> = {
  icmptype: 0, icmpcode: 1,
  'icmp-echoreply': 0, 'icmp-unreach': 3, 'icmp-sourcequench': 4, 'icmp-redirect': 5, 'icmp-echo': 8,
  'icmp-routeradvert': 9, 'icmp-routersolicit': 10, 'icmp-timxceed': 11, 'icmp-paramprob': 12,
  'icmp-tstamp': 13, 'icmp-tstampreply': 14, 'icmp-ireq': 15, 'icmp-ireqreply': 16,
  'icmp-maskreq': 17, 'icmp-maskreply': 18,
  icmp6type: 0, icmp6code: 1,
  'icmp6-destinationunreach': 1, 'icmp6-packettoobig': 2, 'icmp6-timeexceeded': 3, 'icmp6-parameterproblem': 4,
  'icmp6-echo': 128, 'icmp6-echoreply': 129, 'icmp6-multicastlistenerquery': 130,
  'icmp6-multicastlistenerreportv1': 131, 'icmp6-multicastlistenerdone': 132,
  'icmp6-routersolicit': 133, 'icmp6-routeradvert': 134, 'icmp6-neighborsolicit': 135,
  'icmp6-neighboradvert': 136, 'icmp6-redirect': 137, 'icmp6-routerrenum': 138,
  'icmp6-nodeinformationquery': 139, 'icmp6-nodeinformationresponse': 140,
  'icmp6-ineighbordiscoverysolicit': 141, 'icmp6-ineighbordiscoveryadvert': 142,
  'icmp6-multicastlistenerreportv2': 143, 'icmp6-homeagentdiscoveryrequest': 144,
  'icmp6-homeagentdiscoveryreply': 145, 'icmp6-mobileprefixsolicit': 146, 'icmp6-mobileprefixadvert': 147,
  'icmp6-certpathsolicit': 148, 'icmp6-certpathadvert': 149, 'icmp6-multicastrouteradvert': 151,
  'icmp6-multicastroutersolicit': 152, 'icmp6-multicastrouterterm': 153,
  tcpflags: 13, 'tcp-fin': 0x01, 'tcp-syn': 0x02, 'tcp-rst': 0x04, 'tcp-push': 0x08,
  'tcp-ack': 0x10, 'tcp-urg': 0x20, 'tcp-ece': 0x40, 'tcp-cwr': 0x80,
};

const B = '[0-9A-Fa-f][0-9A-Fa-f]?';
const MAC = new RegExp(`^(?:${B}:${B}:${B}:${B}:${B}:${B}|${B}-${B}-${B}-${B}-${B}-${B}|${B}\\.${B}\\.${B}\\.${B}\\.${B}\\.${B}|[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}|[0-9A-Fa-f]{12})`);
const HID = /^[0-9]+(?:\.[0-9]+){1,3}/;
const NUMBER = /^(?:0[xX][0-9A-Fa-f]+|[0-9]+)/;
const V6 = /^[0-9A-Fa-f:][0-9A-Fa-f:.]*/;
const IDENT = /^[A-Za-z0-9](?:[-_.A-Za-z0-9]*[.A-Za-z0-9])?/;
const ESCAPED = /^\\[^ !()\n\t]+/;

function err(message: string, pos: number): NetpdError {
  return new NetpdError('EFILTER', message, { details: { position: pos } });
}

/** Parses an unsigned number token as libpcap's stoulen does (decimal, 0x hex, 0 octal). */
export function parseNumber(text: string, pos: number): number {
  let v: number;
  if (/^0[xX]/.test(text)) v = parseInt(text.slice(2), 16);
  else if (/^0[0-7]+$/.test(text)) v = parseInt(text, 8);
  else if (/^0[0-9]+$/.test(text)) throw err(`number ${text} contains non-octal digit`, pos);
  else v = parseInt(text, 10);
  if (!(v <= 0xffffffff)) throw err(`number ${text} overflows 32 bits`, pos);
  return v;
}

function isV6(text: string): boolean {
  if (!text.includes(':')) return false;
  const parts = text.split('::');
  if (parts.length > 2) return false;
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const all = [...groups(parts[0]), ...(parts.length === 2 ? groups(parts[1]) : [])];
  let count = 0;
  for (let i = 0; i < all.length; i++) {
    const g = all[i];
    if (i === all.length - 1 && /^\d+\.\d+\.\d+\.\d+$/.test(g)) {
      if (!g.split('.').every((x) => Number(x) <= 255)) return false;
      count += 2;
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) count += 1;
    else return false;
  }
  return parts.length === 2 ? count < 8 : count === 8;
}

export function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') { i++; continue; }
    const rest = src.slice(i);
    const two = rest.slice(0, 2);
    if (['>=', '<=', '!=', '==', '<<', '>>', '&&', '||'].includes(two)) {
      tokens.push({ kind: two === '==' ? '=' : (two as TokenKind), text: two, value: two, pos: i });
      i += 2;
      continue;
    }
    if ('()[]:/+-*%&|^><=!'.includes(c)) {
      // A colon may begin an IPv6 address (::1).
      if (!(c === ':' && rest.startsWith('::'))) {
        tokens.push({ kind: c as TokenKind, text: c, value: c, pos: i });
        i++;
        continue;
      }
    }
    let m: RegExpMatchArray | null;
    if ((m = rest.match(ESCAPED))) {
      tokens.push({ kind: 'id', text: m[0], value: m[0].slice(1), pos: i });
      i += m[0].length;
      continue;
    }
    // Like flex: the longest match wins; on a tie, the rule listed first in scanner.l
    // (MAC addresses, numbers, dotted addresses, IPv6, keywords and named numbers, then names).
    const num = rest.match(NUMBER)?.[0] ?? '';
    const hid = rest.match(HID)?.[0] ?? '';
    const mac = rest.match(MAC)?.[0] ?? '';
    const v6 = longestV6(rest);
    const word = rest.match(IDENT)?.[0] ?? '';
    const lower = word.toLowerCase();
    const literal = lower in KEYWORDS || lower in NAMED ? word : '';
    const best = Math.max(num.length, hid.length, mac.length, v6.length, word.length);
    if (best === 0) throw err(`illegal character "${c}"`, i);
    if (mac.length === best) tokens.push({ kind: 'eid', text: mac, value: mac, pos: i });
    else if (num.length === best) tokens.push({ kind: 'num', text: num, value: parseNumber(num, i), pos: i });
    else if (hid.length === best) tokens.push({ kind: 'hid', text: hid, value: hid, pos: i });
    else if (v6.length === best) tokens.push({ kind: 'hid6', text: v6, value: v6, pos: i });
    else if (literal.length === best && lower in KEYWORDS) tokens.push({ kind: 'kw', text: word, value: KEYWORDS[lower], pos: i });
    else if (literal.length === best) tokens.push({ kind: 'num', text: word, value: NAMED[lower], pos: i });
    else tokens.push({ kind: 'id', text: word, value: word, pos: i });
    i += best;
    continue;
  }
  tokens.push({ kind: 'eof', text: '', value: '', pos: src.length });
  return tokens;
}

function longestV6(rest: string): string {
  const m = rest.match(V6);
  if (!m || !m[0].includes(':')) return '';
  let text = m[0];
  while (text.length > 0 && !isV6(text)) text = text.slice(0, -1);
  return text;
}
