// netpd send -i IFACE -r FILE: replays a capture's frames, in order, from the arena. A
// file that fits in half the arena is read once and resent from the same slots on every
// --loop; a larger one is streamed on every pass. --pps paces it.

import { Command, Option } from 'commander';
import { NetpdError } from '../errors.js';
import { Arena } from '../arena.js';
import { PcapReader } from '../pcap/index.js';
import { AfPacketSource } from '../live/afpacket.js';
import { BURST, onStopSignal, positive } from './options.js';

interface SendFlags {
  interface?: string;
  read?: string;
  pps?: string;
  loop?: string;
  txMode?: 'mmsg' | 'ring';
  json?: boolean;
}

export function sendCommand(): Command {
  return new Command('send')
    .summary('replay a capture onto an interface')
    .description('Replays the frames of a capture file onto a live interface, in order, from the arena.')
    .option('-i, --interface <iface>', 'the interface to send on')
    .option('-r, --read <file>', 'the capture file whose frames are sent')
    .option('--pps <n>', 'pace at N packets per second')
    .option('--loop <n>', 'send the file N times')
    .addOption(new Option('--tx-mode <mode>', 'sendmmsg from the slots, or the PACKET_TX_RING').choices(['mmsg', 'ring']).default('mmsg'))
    .option('--json', 'print one JSON object as the last line')
    .action((flags: SendFlags) => send(flags));
}

async function send(flags: SendFlags): Promise<void> {
  if (!flags.interface || !flags.read) throw new NetpdError('EINVAL', 'send needs -i IFACE and -r FILE');
  const file = flags.read;
  const pps = positive(flags.pps, '--pps', 'rate in packets per second', 0);
  const loops = positive(flags.loop, '--loop', 'number of passes', 1);
  const arena = Arena.create({ slotSize: 16384, slotCount: 16384 });
  const source = AfPacketSource.open(flags.interface, { arena, transmitOnly: true, txMode: flags.txMode });
  const held = preload(file, arena);
  const vec = arena.burstVector(BURST);
  let stop = false;
  const removeSignals = onStopSignal(() => { stop = true; });
  let sent = 0;
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  // Pacing: a burst goes when the schedule (sent / pps seconds) allows it, in bursts of
  // at most 1 ms worth of packets, so the rate holds at any scale.
  const burstCap = pps > 0 ? Math.max(1, Math.min(BURST, Math.floor(pps / 1000))) : BURST;
  let bursts = 0;
  try {
    for (let pass = 0; pass < loops && !stop; pass++) {
      const reader = held ? undefined : PcapReader.open(file, { arena });
      try {
        for (let at = 0; !stop; ) {
          let n: number;
          if (held) {
            n = Math.min(burstCap, held.length - at);
            if (n <= 0) break;
            vec.set(held.subarray(at, at + n));
            arena.retainBurst(vec, n);
            at += n;
          } else {
            n = reader!.readBurst(vec, burstCap);
            if (n === 0) break;
          }
          let done = 0;
          while (done < n && !stop) {
            if (pps > 0) {
              const ahead = sent / pps - elapsed();
              if (ahead > 0.001) await new Promise((r) => setTimeout(r, ahead * 1000));
            }
            const k = source.send(vec.subarray(done), n - done);
            sent += k;
            done += k;
            // The kernel is busy (socket buffer full): let it drain.
            if (k === 0) await new Promise((r) => setImmediate(r));
          }
          if (done < n) arena.freeBurst(vec.subarray(done), n - done);
          if ((++bursts & 255) === 0) await new Promise((r) => setImmediate(r));
        }
      } finally {
        reader?.close();
      }
    }
  } finally {
    removeSignals();
    if (held) arena.freeBurst(held, held.length);
  }
  const seconds = elapsed();
  const stats = source.stats();
  source.close();
  const bytes = stats.sentBytes;
  const report = { sent: stats.sent, bytes, seconds: Number(seconds.toFixed(6)), pps: Math.round(stats.sent / seconds), errors: stats.sendErrors };
  if (flags.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${flags.interface}: sent ${report.sent} packets (${bytes} bytes) in ${seconds.toFixed(3)} s, ${report.pps} packets/s${report.errors ? `; ${report.errors} refused by the link (longer than the MTU?)` : ''}\n`);
}

/** The file's packets held in arena slots, or undefined when they would take over half the arena. */
function preload(file: string, arena: Arena): Uint32Array | undefined {
  const reader = PcapReader.open(file, { arena });
  const limit = arena.slotCount >>> 1;
  const held = arena.burstVector(limit);
  let n = 0;
  try {
    for (let k; n < limit && (k = reader.readBurst(held.subarray(n), Math.min(BURST, limit - n))) > 0; ) n += k;
    if (n === limit) {
      // More than fits: stream the file on every pass instead.
      const probe = arena.burstVector(1);
      if (reader.readBurst(probe, 1) > 0) {
        arena.freeBurst(probe, 1);
        arena.freeBurst(held, n);
        return undefined;
      }
    }
  } finally {
    reader.close();
  }
  return held.subarray(0, n);
}
