// 5-tuple flows for the DPF tests and the dispatch benchmark: the demultiplexing DPF was
// made for, one owner per connection. Plain JavaScript so bench/dispatch.mjs can import
// it without a build (flows.d.mts has the types).
//
// Flows are IPv4, TCP or UDP, with distinct (src, dst, sport, dport) drawn from a seeded
// generator, so every run sees the same flows. Frames are 60 bytes (64 on the wire).

/** xorshift32: a small seeded generator (the same numbers on every machine). */
export function generator(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

/** `count` distinct flows. */
export function makeFlows(count, seed = 1) {
  const next = generator(seed);
  const seen = new Set();
  const flows = [];
  while (flows.length < count) {
    const flow = {
      proto: next() & 1 ? 6 : 17,
      src: (0x0a000000 | (next() & 0xffffff)) >>> 0,
      dst: (0xc0a80000 | (next() & 0xffff)) >>> 0,
      sport: 1024 + (next() % 60000),
      dport: [80, 443, 53, 22, 8080][next() % 5],
    };
    const key = `${flow.proto}/${flow.src}/${flow.dst}/${flow.sport}/${flow.dport}`;
    if (seen.has(key)) continue;
    seen.add(key);
    flows.push(flow);
  }
  return flows;
}

const ip = (a) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;

/** The flow as a pcap-filter expression. */
export function flowExpression(f) {
  return `${f.proto === 6 ? 'tcp' : 'udp'} and src host ${ip(f.src)} and dst host ${ip(f.dst)} and src port ${f.sport} and dst port ${f.dport}`;
}

/** The flow as a DPF description: what compileFilter(flowExpression(f), { target: 'dpf' }) gives. */
export function fiveTuple(f) {
  return [
    { offset: 12, size: 2, value: 0x0800 },
    { offset: 20, size: 2, mask: 0x1fff, value: 0 },
    { offset: 23, size: 1, value: f.proto },
    { offset: 26, size: 4, value: f.src },
    { offset: 30, size: 4, value: f.dst },
    { shift: { offset: 14, size: 1, mask: 0x0f, scale: 4 } },
    { offset: 14, size: 2, value: f.sport },
    { offset: 16, size: 2, value: f.dport },
  ];
}

/** A 60-byte Ethernet/IPv4 frame of the flow. */
export function flowFrame(f) {
  const b = new Uint8Array(60);
  const v = new DataView(b.buffer);
  v.setUint32(0, 0x02000000);
  v.setUint16(4, 0x0001);
  v.setUint32(6, 0x02000000);
  v.setUint16(10, 0x0002);
  v.setUint16(12, 0x0800);
  b[14] = 0x45;
  v.setUint16(16, 46);
  b[22] = 64;
  b[23] = f.proto;
  v.setUint32(26, f.src);
  v.setUint32(30, f.dst);
  v.setUint16(34, f.sport);
  v.setUint16(36, f.dport);
  if (f.proto === 17) v.setUint16(38, 26);
  else b[46] = 0x50;
  return b;
}

/**
 * `packets` frames of flows drawn at random, `unmatched` of them from flows no owner
 * has (a flow's addresses with a source port below 1024, which makeFlows never uses).
 */
export function* flowTraffic(flows, packets, { unmatched = 0.1, seed = 1 } = {}) {
  const next = generator(seed ^ 0x5bd1e995);
  for (let i = 0; i < packets; i++) {
    const flow = flows[next() % flows.length];
    const stray = next() / 2 ** 32 < unmatched;
    yield flowFrame(stray ? { ...flow, sport: 1 + (next() % 1023) } : flow);
  }
}
