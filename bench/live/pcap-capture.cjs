// node_pcap (the `pcap` npm package, libpcap through nan) as a capture peer for netpd's
// live benchmark: the usual way a Node program captures today, with one JavaScript
// callback per packet. The callback only counts, never decodes, so this is the
// cheapest fair use of that API; whatever it costs is the floor for node_pcap users.
// CommonJS because node_pcap is, and it lives apart in bench/live/peers/node_modules
// (node bench/live/install-peers.mjs puts it there).
//
//   node bench/live/pcap-capture.cjs IFACE [--buffer-size BYTES] [--buffer-timeout MS]
//                                          [--snaplen N] [--filter EXPR]
//
// Prints `ready` once the session is open and its ring is receiving. On SIGINT or
// SIGTERM it prints one JSON line and exits:
//   {"packets":N,"bytes":B,"kernel":{"received":r,"dropped":d,"ifdropped":i},"userUs":u,"sysUs":s,...}
// bytes adds up each packet's length on the wire; kernel is libpcap's pcap_stats()
// (ps_recv, ps_drop, ps_ifdrop); userUs/sysUs is this process's CPU time from `ready`
// to the end, so Node's start-up and the require are not charged to the capture.
'use strict';
const path = require('node:path');

function usage(msg) {
  console.error(`pcap-capture: ${msg}\nusage: node bench/live/pcap-capture.cjs IFACE [--buffer-size BYTES] [--buffer-timeout MS] [--snaplen N] [--filter EXPR]`);
  process.exit(2);
}

const opts = { bufferSize: 64 << 20, bufferTimeout: 1000, snaplen: 65535, filter: '' };
let iface = null;
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  const value = () => {
    if (i + 1 >= process.argv.length) usage(`${arg} needs a value`);
    return process.argv[++i];
  };
  if (arg === '--buffer-size') opts.bufferSize = Number(value());
  else if (arg === '--buffer-timeout') opts.bufferTimeout = Number(value());
  else if (arg === '--snaplen') opts.snaplen = Number(value());
  else if (arg === '--filter') opts.filter = value();
  else if (arg.startsWith('-')) usage(`unknown option ${arg}`);
  else if (iface === null) iface = arg;
  else usage(`unexpected argument ${arg}`);
}
if (!iface) usage('no interface given');
for (const k of ['bufferSize', 'bufferTimeout', 'snaplen']) if (!Number.isInteger(opts[k]) || opts[k] < 0) usage(`bad ${k}`);

let pcap;
try {
  pcap = require(path.join(__dirname, 'peers', 'node_modules', 'pcap'));
} catch (e) {
  console.error(`pcap-capture: node_pcap is not installed or not built (run node bench/live/install-peers.mjs): ${e.message}`);
  process.exit(2);
}

let session;
try {
  // A buffer_timeout of 0 would switch libpcap to immediate mode (TPACKET_V2, a wakeup
  // per packet); node_pcap's own default, 1000 ms, keeps TPACKET_V3's batched blocks,
  // which is what its users get unless they ask otherwise.
  session = pcap.createSession(iface, {
    filter: opts.filter,
    buffer_size: opts.bufferSize,
    buffer_timeout: opts.bufferTimeout,
    snap_length: opts.snaplen,
    promiscuous: true,
  });
} catch (e) {
  console.error(`pcap-capture: cannot open ${iface}: ${e.message}`);
  process.exit(1);
}

let packets = 0;
let bytes = 0;
session.on('packet', (raw) => {
  packets++;
  bytes += raw.header.readUInt32LE(12); // pcap_pkthdr.len: the length on the wire
});

const start = process.resourceUsage();
const startNs = process.hrtime.bigint();
process.stdout.write('ready\n');

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  // TPACKET_V3 hands a block to user space when it fills or its timeout expires, so
  // packets in the open block are only readable after up to buffer_timeout; wait for
  // them instead of under-counting what the kernel already reported as received.
  setTimeout(() => {
    session.session.dispatch(session.buf, session.header);
    const stats = session.stats();
    const end = process.resourceUsage();
    const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
    session.close();
    const report = {
      packets,
      bytes,
      kernel: { received: stats.ps_recv, dropped: stats.ps_drop, ifdropped: stats.ps_ifdrop },
      userUs: end.userCPUTime - start.userCPUTime,
      sysUs: end.systemCPUTime - start.systemCPUTime,
      seconds,
      signal,
      libpcap: pcap.lib_version,
      bufferSize: opts.bufferSize,
      bufferTimeoutMs: opts.bufferTimeout,
    };
    process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
  }, opts.bufferTimeout + 50);
}
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
