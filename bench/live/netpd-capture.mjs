// netpd as the capturing process of the live benchmark: AfPacketSource feeding a
// dispatcher whose default netio is one JavaScript callback per packet (`push`), the
// same work node_pcap's per-packet callback does in pcap-capture.cjs, or one call per
// run of packets (`--deliver batch`).
//
//   node bench/live/netpd-capture.mjs IFACE [--rx ring|mmsg] [--deliver push|batch] [--block-timeout MS]
//
// Prints `ready` once the socket is open. On SIGINT/SIGTERM it waits for the ring's
// last block (blockTimeoutMs), closes, and prints one JSON line:
//   {"packets":N,"bytes":B,"kernel":{"packets":p,"drops":d},"noslot":s,"userUs":u,"sysUs":s,"rssKb":r}
// CPU time is counted from `ready`, so start-up is not charged to the capture.
import { Arena, PacketDispatcher, AfPacketSource } from '../../dist/index.js';

const args = process.argv.slice(2);
const iface = args[0];
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const rxMode = opt('--rx', 'ring');
const deliver = opt('--deliver', 'push');
const blockTimeoutMs = Number(opt('--block-timeout', '2'));
if (!iface) { console.error('usage: netpd-capture.mjs IFACE [--rx ring|mmsg] [--deliver push|batch]'); process.exit(2); }

const arena = Arena.create({ slotSize: 2048, slotCount: 16384 });
let packets = 0;
let bytes = 0;
const netio = deliver === 'batch'
  ? { pushBatch(batch) { packets += batch.length; } }
  : { push(packet) { packets++; bytes += packet.wireLength; } };
const dispatcher = PacketDispatcher.create({ arena, defaultNetio: netio });
const source = AfPacketSource.open(iface, { dispatcher, rxMode, blockTimeoutMs });
source.on('error', (err) => { console.error(err.message); process.exit(1); });
const start = process.resourceUsage();
process.stdout.write('ready\n');

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  setTimeout(() => {
    source.drain();
    const end = process.resourceUsage();
    source.close();
    const s = source.stats();
    const report = {
      packets: deliver === 'batch' ? s.received : packets,
      bytes: deliver === 'batch' ? s.bytes : bytes,
      kernel: s.kernel,
      noslot: s.dropped.noslot,
      userUs: end.userCPUTime - start.userCPUTime,
      sysUs: end.systemCPUTime - start.systemCPUTime,
      rssKb: Math.round(process.memoryUsage().rss / 1024),
    };
    process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
  }, 50);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
