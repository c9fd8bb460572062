// Tiny frame builders for unit tests that need a handful of well-known packets.
// Checked against libpcap elsewhere; here only their shape matters.

export function ether(type: number, payload: number[], dst = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], src = [2, 0, 0, 0, 0, 1]): Uint8Array {
  return Uint8Array.from([...dst, ...src, type >> 8, type & 0xff, ...payload]);
}

/** An Ethernet ARP frame; op 1 = request, 2 = reply. */
export function arp(op: number): Uint8Array {
  return ether(0x0806, [0, 1, 8, 0, 6, 4, 0, op, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2, ...new Array(18).fill(0)]);
}

/** An Ethernet IPv4 UDP frame (no options, checksum 0) to `dport`. */
export function udp4(dport: number, payloadLen = 8): Uint8Array {
  const ulen = 8 + payloadLen;
  const tot = 20 + ulen;
  const ip = [0x45, 0, tot >> 8, tot & 0xff, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
  const u = [0x30, 0x39, dport >> 8, dport & 0xff, ulen >> 8, ulen & 0xff, 0, 0, ...new Array(payloadLen).fill(0x61)];
  return ether(0x0800, [...ip, ...u]);
}

/** Classic BPF: accept (65535) when the 16-bit word at `offset` equals `value`. */
export function halfwordEquals(offset: number, value: number) {
  return [
    { code: 0x28, jt: 0, jf: 0, k: offset },
    { code: 0x15, jt: 0, jf: 1, k: value },
    { code: 0x06, jt: 0, jf: 0, k: 65535 },
    { code: 0x06, jt: 0, jf: 0, k: 0 },
  ];
}

/** Classic BPF: ARP with the given operation (ethertype 0x806 and arp[6:2] == op). */
export function arpOp(op: number) {
  return [
    { code: 0x28, jt: 0, jf: 0, k: 12 },
    { code: 0x15, jt: 0, jf: 3, k: 0x806 },
    { code: 0x28, jt: 0, jf: 0, k: 20 },
    { code: 0x15, jt: 0, jf: 1, k: op },
    { code: 0x06, jt: 0, jf: 0, k: 65535 },
    { code: 0x06, jt: 0, jf: 0, k: 0 },
  ];
}
