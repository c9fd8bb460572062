// Live capture and transmit, side by side on one veth pair in the same run:
//
//   transmit   netpd send vs tcpreplay --topspeed, 64-byte frames, from end B;
//   receive    netpd (AfPacketSource + dispatcher, one JS callback per packet; ring and
//              mmsg modes), tcpdump -w /dev/null, and node_pcap (`pcap` npm, one JS
//              callback per packet) each capture end A while the same frames are sent
//              at tcpreplay's top speed and at netpd send's: packets lost, and CPU time
//              (user+sys of the capturing process) per received packet;
//   soak       (--soak SECONDS) netpd send at top speed into netpd capture for SECONDS:
//              resident memory over time and the accounting sent = received + drops.
//
// Senders run on CPU 0 and capturers on CPU 1 (taskset), so one does not steal the
// other's core. On veth the receiving kernel work (including the capture sockets'
// copy into their rings) runs in the sender's softirq, on the sender's CPU.
//
//   node bench/live.mjs [--json] [--quick] [--soak SECONDS]
//
// Needs root (network namespaces, AF_PACKET), tcpdump and tcpreplay; node_pcap is
// installed into bench/live/peers by bench/live/install-peers.mjs. Without them it
// says what is missing and exits 0.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { PcapWriter } from '../dist/index.js';
import { createLab, labSkipReason, toolSkipReason } from '../test/support/netns.mjs';
import { ensurePeers } from './live/install-peers.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const soakAt = process.argv.indexOf('--soak');
const soakSeconds = soakAt >= 0 ? Number(process.argv[soakAt + 1]) : 0;
const FRAMES = 4096;
const TX_PACKETS = quick ? 500_000 : 3_000_000;
const RX_PACKETS = quick ? 300_000 : 5_000_000;
const log = (s) => { if (!json) console.log(s); };

const skip = labSkipReason() ?? toolSkipReason('tcpdump') ?? toolSkipReason('tcpreplay') ?? toolSkipReason('taskset');
if (skip) {
  console.log(`bench/live: skipped: ${skip}`);
  process.exit(0);
}
const peers = ensurePeers({ quiet: true });
if (!peers.ok) log(`bench/live: node_pcap left out: ${peers.reason}`);

const lab = await createLab('bench', { mtu: 9000 });
process.on('exit', () => lab.destroySync());
const frames = join(lab.tmpdir(), 'udp64.pcap');
writeFrames(frames);
const rows = [];

// --- transmit ----------------------------------------------------------------
log(`transmit: ${TX_PACKETS} frames of 64 bytes on the wire (60 + FCS), from one core`);
for (const sender of ['netpd send', 'netpd send --tx-mode ring', 'tcpreplay --topspeed']) {
  const r = await sendFrames(sender, TX_PACKETS);
  rows.push({ group: 'transmit', name: sender, pps: r.pps, sent: r.sent });
  log(`  ${sender.padEnd(22)} ${fmt(r.pps)} packets/s (${r.sent} sent)`);
}

// --- receive -----------------------------------------------------------------
const capturers = [
  ['netpd (ring, per-packet callback)', () => startChild('node', [here('./live/netpd-capture.mjs'), lab.a, '--rx', 'ring'])],
  ['netpd (mmsg, per-packet callback)', () => startChild('node', [here('./live/netpd-capture.mjs'), lab.a, '--rx', 'mmsg'])],
  ['tcpdump -w /dev/null', startTcpdump],
  ...(peers.ok ? [['node_pcap (per-packet callback)', () => startChild('node', [here('./live/pcap-capture.cjs'), lab.a])]]: []),
];
for (const sender of ['tcpreplay --topspeed', 'netpd send']) {
  log(`receive: ${RX_PACKETS} frames sent by ${sender}`);
  for (const [name, start] of capturers) {
    const cap = await start();
    spawnSync('taskset', ['-a', '-p', '-c', '1', String(cap.pid)], { stdio: 'ignore' });
    const tx = await sendFrames(sender, RX_PACKETS);
    const got = await cap.stop();
    const lost = tx.sent - got.packets;
    const nsPerPacket = got.packets > 0 ? (got.cpuUs * 1000) / got.packets : 0;
    rows.push({ group: 'receive', traffic: sender, name, sentPps: tx.pps, sent: tx.sent, received: got.packets, lost, kernelDrops: got.drops, cpuNsPerPacket: nsPerPacket });
    log(`  ${name.padEnd(34)} at ${fmt(tx.pps)} pps: received ${got.packets}/${tx.sent}, lost ${lost} (kernel drops ${got.drops}), CPU ${nsPerPacket.toFixed(0)} ns/packet`);
  }
}

// --- soak ----------------------------------------------------------------------
if (soakSeconds > 0) {
  log(`soak: netpd send at top speed into netpd capture for ${soakSeconds} s`);
  const cap = await startChild('node', [here('./live/netpd-capture.mjs'), lab.a, '--rx', 'ring']);
  spawnSync('taskset', ['-a', '-p', '-c', '1', String(cap.pid)], { stdio: 'ignore' });
  const droppedBefore = linkDrops(lab.a);
  const sender = lab.spawn('taskset', ['-c', '0', 'node', here('../dist/cli.js'), 'send', '-i', lab.b, '-r', frames, '--loop', '1000000000', '--json'], { ns: true });
  let out = '';
  sender.stdout.on('data', (d) => { out += d; });
  const rss = [];
  for (let t = 0; t < soakSeconds; t += 10) {
    await sleep(Math.min(10, soakSeconds - t) * 1000);
    rss.push(rssKb(cap.pid));
    log(`  ${String(Math.min(t + 10, soakSeconds)).padStart(4)} s: capture RSS ${(rss.at(-1) / 1024).toFixed(1)} MiB`);
  }
  sender.kill('SIGINT');
  await new Promise((r) => sender.on('close', r));
  const tx = JSON.parse(out.trim().split('\n').at(-1));
  const got = await cap.stop();
  const linkDropped = linkDrops(lab.a) - droppedBefore;
  const accounted = got.packets + got.drops + got.noslot + linkDropped;
  rows.push({ group: 'soak', seconds: soakSeconds, sent: tx.sent, pps: tx.pps, received: got.packets, kernelDrops: got.drops, noslot: got.noslot, linkDrops: linkDropped, rssKb: rss });
  log(`  sent ${tx.sent} (${fmt(tx.pps)} pps); received ${got.packets}, kernel drops ${got.drops}, noslot ${got.noslot}, link drops ${linkDropped}: ${accounted === tx.sent ? 'every packet accounted for' : `MISMATCH: ${accounted} accounted`}`);
  log(`  capture RSS first/last/max: ${[rss[0], rss.at(-1), Math.max(...rss)].map((k) => `${(k / 1024).toFixed(1)} MiB`).join(' / ')}`);
}

const machine = `${os.cpus()[0].model.trim()}, ${os.cpus().length} cores, Linux ${os.release()}, Node ${process.version}`;
if (json) console.log(JSON.stringify({ machine, rows }));
else log(`machine: ${machine}`);
await lab.destroy();

// ------------------------------------------------------------------------------

/** FRAMES distinct 60-byte IPv4/UDP frames (4096 flows) to a MAC that is not A's, so A's stack ignores them. */
function writeFrames(path) {
  const w = PcapWriter.create(path, { nanosecond: true });
  for (let i = 0; i < FRAMES; i++) {
    const f = new Uint8Array(60);
    f.set([0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00]);
    const ip = [0x45, 0, 0, 46, i >> 8, i & 255, 0, 0, 64, 17, 0, 0, 198, 18, 200, i & 255, 198, 18, 201, (i >> 8) + 1];
    let sum = 0;
    for (let j = 0; j < 20; j += 2) sum += (ip[j] << 8) | ip[j + 1];
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    ip[10] = (~sum >> 8) & 255;
    ip[11] = ~sum & 255;
    f.set(ip, 14);
    const sport = 1024 + i;
    f.set([sport >> 8, sport & 255, 0x13, 0x89, 0, 26, 0, 0], 34); // UDP, no checksum (allowed in IPv4)
    w.writePacket(f, { sec: 1, nsec: i });
  }
  w.close();
}

async function sendFrames(sender, packets) {
  const loops = Math.ceil(packets / FRAMES);
  if (sender.startsWith('netpd send')) {
    const mode = sender.endsWith('ring') ? 'ring' : 'mmsg';
    const r = await lab.exec('taskset', ['-c', '0', 'node', here('../dist/cli.js'), 'send', '-i', lab.b, '-r', frames, '--loop', String(loops), '--tx-mode', mode, '--json'], { ns: true });
    if (r.code !== 0) throw new Error(`netpd send failed: ${r.stderr}`);
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1));
    return { sent: j.sent, pps: j.pps };
  }
  const r = await lab.tcpreplay(frames, { side: 'b', topspeed: true, loop: loops, preload: true, args: [] });
  return { sent: r.sent, pps: r.pps };
}

/** A capturing child that prints `ready`, and on SIGINT one JSON line. */
function startChild(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.startsWith('ready\n') && !child.readyResolved) {
        child.readyResolved = true;
        resolve({
          pid: child.pid,
          stop: () => new Promise((done) => {
            child.on('close', () => {
              const j = JSON.parse(out.trim().split('\n').at(-1));
              done({ packets: j.packets, drops: j.kernel.drops ?? j.kernel.dropped ?? 0, noslot: j.noslot ?? 0, cpuUs: j.userUs + j.sysUs });
            });
            // The sender has returned; give the kernel a moment to finish delivering.
            setTimeout(() => child.kill('SIGINT'), 200);
          }),
        });
      }
    });
    child.on('error', reject);
    child.on('close', (code) => { if (!child.readyResolved) reject(new Error(`${args[0]} exited ${code} before it was ready`)); });
  });
}

async function startTcpdump() {
  const cap = await lab.tcpdump({ side: 'a', file: '/dev/null', immediate: false });
  const cpu0 = cpuTicks(cap.pid);
  return {
    pid: cap.pid,
    async stop() {
      await sleep(1100); // its 1 s buffer timeout: let the last block reach it before reading its CPU time
      const ticks = cpuTicks(cap.pid) - cpu0;
      const s = await cap.stop({ settleMs: 0 });
      return { packets: s.captured, drops: s.droppedByKernel, noslot: 0, cpuUs: (ticks * 1e6) / clockTicks() };
    },
  };
}

function cpuTicks(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
}

function clockTicks() {
  return Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
}

function rssKb(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

function linkDrops(iface) {
  const j = JSON.parse(spawnSync('ip', ['-s', '-j', 'link', 'show', iface], { encoding: 'utf8' }).stdout);
  return j[0].stats64.rx.dropped;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function fmt(x) {
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : String(Math.round(x));
}
