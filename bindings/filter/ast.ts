// The syntax tree of a pcap-filter expression. Primitives keep the qualifiers they
// were written with or inherited ("host a or b" gives b the qualifiers of a), and
// stay in the order they were written: code generation walks them left to right,
// because some primitives (vlan, mpls, pppoes) move the offsets of those after them.

export type Proto =
  | 'default' | 'link' | 'ip' | 'arp' | 'rarp' | 'sctp' | 'tcp' | 'udp' | 'icmp' | 'igmp' | 'igrp'
  | 'pim' | 'vrrp' | 'carp' | 'atalk' | 'aarp' | 'decnet' | 'lat' | 'sca' | 'moprc' | 'mopdl'
  | 'ip6' | 'icmp6' | 'ah' | 'esp' | 'iso' | 'esis' | 'isis' | 'l1' | 'l2' | 'iih' | 'lsp' | 'snp'
  | 'csnp' | 'psnp' | 'clnp' | 'stp' | 'ipx' | 'netbeui' | 'radio';
export type Dir = 'default' | 'src' | 'dst' | 'or' | 'and';
export type AddrQual = 'default' | 'host' | 'net' | 'port' | 'portrange' | 'proto' | 'protochain' | 'gateway';

export interface Qual {
  proto: Proto;
  dir: Dir;
  addr: AddrQual;
  /** Set after a term that leaves no qualifiers (libpcap's qerr): an id may not follow. */
  undef?: true;
}

/** The qualifiers after a term that takes none (an id may not follow it). */
export const QERR: Qual = { proto: 'default', dir: 'default', addr: 'default', undef: true };

export type IdValue =
  | { kind: 'num'; value: number }
  | { kind: 'name'; text: string }
  | { kind: 'ipv4'; text: string; prefix?: number; mask?: string }
  | { kind: 'ipv6'; text: string; prefix?: number }
  | { kind: 'mac'; text: string };

export type Arith =
  | { t: 'num'; value: number }
  | { t: 'len' }
  | { t: 'load'; proto: Proto; index: Arith; size: number; pos: number }
  | { t: 'binop'; op: '+' | '-' | '*' | '/' | '%' | '&' | '|' | '^' | '<<' | '>>'; l: Arith; r: Arith }
  | { t: 'neg'; e: Arith };

export type Node =
  | { t: 'and' | 'or'; l: Node; r: Node }
  | { t: 'not'; e: Node }
  | { t: 'id'; q: Qual; v: IdValue; pos: number }
  | { t: 'proto'; proto: Proto; pos: number }
  | { t: 'rel'; code: 'jgt' | 'jge' | 'jeq'; reversed: boolean; l: Arith; r: Arith }
  | { t: 'broadcast' | 'multicast'; proto: Proto; pos: number }
  | { t: 'less' | 'greater'; value: number }
  | { t: 'byte'; index: number; op: '&' | '|' | '<' | '>' | '='; value: number }
  | { t: 'vlan' | 'mpls' | 'pppoes'; value?: number; pos: number }
  | { t: 'pppoed' }
  | { t: 'llc'; kind?: string; pos: number }
  | { t: 'inbound' | 'outbound' }
  | { t: 'ifindex'; value: number }
  | { t: 'unsupported'; what: string; pos: number };
