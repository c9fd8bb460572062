// Names libpcap looks up in local files rather than by name resolution: services for
// `port NAME` and `portrange A-B` (/etc/services, as pcap_nametoport through
// getservbyname) and IP protocols for `proto \NAME` (/etc/protocols, as
// pcap_nametoproto through getprotobyname). A service known for TCP is a TCP port; if
// UDP has it at the same number it stands for both; one known only for UDP is a UDP
// port.

import { readFileSync } from 'node:fs';

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

let table: Map<string, { tcp?: number; udp?: number }> | undefined;

function services(): Map<string, { tcp?: number; udp?: number }> {
  if (table) return table;
  table = new Map();
  let text = '';
  try {
    text = readFileSync('/etc/services', 'utf8');
  } catch {
    return table;
  }
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^(\S+)\s+(\d+)\/(tcp|udp)(?:\s+(.*))?$/.exec(line);
    if (!m) continue;
    const port = Number(m[2]);
    for (const name of [m[1], ...(m[4] ? m[4].split(/\s+/) : [])]) {
      const entry = table.get(name) ?? {};
      const proto = m[3] as 'tcp' | 'udp';
      if (entry[proto] === undefined) entry[proto] = port;
      table.set(name, entry);
    }
  }
  return table;
}

/** The port and IP protocol (null: both TCP and UDP) a service name stands for, or null. */
export function serviceToPort(name: string): { port: number; proto: number | null } | null {
  const e = services().get(name);
  if (!e) return null;
  if (e.tcp !== undefined) return { port: e.tcp, proto: e.udp === e.tcp ? null : PROTO_TCP };
  if (e.udp !== undefined) return { port: e.udp, proto: PROTO_UDP };
  return null;
}

let protocols: Map<string, number> | undefined;

/** The IP protocol number /etc/protocols gives a name (or an alias), or null. */
export function protocolNumber(name: string): number | null {
  if (!protocols) {
    protocols = new Map();
    let text = '';
    try {
      text = readFileSync('/etc/protocols', 'utf8');
    } catch {
      text = '';
    }
    for (const raw of text.split('\n')) {
      const f = raw.replace(/#.*/, '').trim().split(/\s+/);
      if (f.length < 2 || !/^\d+$/.test(f[1])) continue;
      for (const n of [f[0], ...f.slice(2)]) if (!protocols.has(n)) protocols.set(n, Number(f[1]));
    }
  }
  return protocols.get(name) ?? null;
}
