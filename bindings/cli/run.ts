// netpd run: a capture (the bundled sample by default) or a live interface dispatched to
// one owner per rule; prints per-owner counters (report.ts). It stops at -c, at the end
// of the file, or on SIGINT/SIGTERM, and always prints its final counters — also when a
// damaged file ends the reading early: then the counters of the packets before the
// damage, and the error after them. The arena and dispatcher are sized from the rules
// (sizeForRules), so a rules file of 100,000 lines needs no capacity flags.

import { Command, Option } from 'commander';
import { NetpdError } from '../errors.js';
import { Arena } from '../arena.js';
import { PacketDispatcher } from '../dispatcher.js';
import { linkTypeName } from '../filter/compile.js';
import { PcapReader, PcapWriter } from '../pcap/index.js';
import { AfPacketSource, type AfPacketOptions } from '../live/afpacket.js';
import { registerRules, sizeForRules, type Rule } from '../bench-dispatch.js';
import {
  BURST, SAMPLE, dispatchChoice, expression, fileLinkType, firstLinkType, givenRules, linkType, linkTypeNames, onStopSignal, openCapture, positive, readAll, sampleRules,
  slotSize, slotsFor, type DispatchChoice,
} from './options.js';
import { addDispatchOptions } from './command.js';
import { displayName, jsonReport, progressBar, table } from './report.js';

interface RunFlags {
  read?: string;
  interface?: string;
  rule?: string[];
  rulesFile?: string;
  count?: string;
  json?: boolean;
  write?: string;
  filterType?: string;
  jit?: boolean;
  slotSize?: string;
  snaplen?: string;
  promiscuousMode?: boolean;
  bufferSize?: string;
  direction?: 'in' | 'out' | 'inout';
  linktype?: string;
  listInterfaces?: boolean;
  numeric?: boolean;
  file?: string;
}

/** Flags that only mean something for a live interface. */
const LIVE_ONLY: [keyof RunFlags, string][] = [
  ['write', '-w'], ['snaplen', '-s'], ['promiscuousMode', '-p'], ['bufferSize', '-B'], ['direction', '-Q'], ['linktype', '-y'], ['file', '-F'],
];

export function runCommand(): Command {
  const cmd = new Command('run')
    .summary('dispatch a capture or a live interface to owners and print their counters')
    .description('Dispatches a capture file (the bundled sample when neither -r nor -i is given) or a live interface to one owner per rule, and prints per-owner counters: a table, or with --json one object on the last line. Stops at -c, at the end of the file, or on SIGINT/SIGTERM.')
    .argument('[expr...]', 'with -i: a pcap-filter expression the kernel runs (what it rejects never reaches netpd)')
    .option('-r, --read <file>', 'read packets from a capture file (pcap or pcapng; - for standard input)')
    .option('-i, --interface <iface>', 'capture live from IFACE (any: every interface, as Linux cooked frames)')
    .option('--rule <name=expr>', 'an owner: NAME=EXPR, or NAME=@FILE.ddd for a tcpdump -ddd program (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('--rules-file <file>', 'owners from a file: one NAME=EXPR or EXPR a line, # comments')
    .option('-c, --count <n>', 'stop after N packets')
    .option('--slot-size <bytes>', 'bytes of packet kept per slot, 64 to 65536 (default 2048; jumbo and GRO frames need more)')
    .option('--json', 'print one JSON object as the last line')
    .option('-n, --numeric', 'accepted for tcpdump\'s habit: netpd resolves no names');
  addDispatchOptions(cmd);
  cmd
    .option('-w, --write <file>', 'live: write the dispatched packets to FILE (nanosecond pcap)')
    .option('-s, --snaplen <bytes>', 'live: keep at most BYTES of each frame')
    .option('-p, --no-promiscuous-mode', 'live: do not put the interface into promiscuous mode')
    .option('-B, --buffer-size <KiB>', 'live: size of the receive ring in KiB (default 32768)')
    .addOption(new Option('-Q, --direction <dir>', 'live: frames received (in), sent (out) or both (inout, the default)').choices(['in', 'out', 'inout']))
    .option('-y, --linktype <type>', 'live: the link type expected (EN10MB, or LINUX_SLL with -i any)')
    .option('-F, --file <file>', 'live: read the kernel filter expression from FILE (# starts a comment)')
    .option('-D, --list-interfaces', 'list the interfaces netpd can capture on, like tcpdump -D')
    .action((words: string[], flags: RunFlags) => run(words, flags));
  return cmd;
}

async function run(words: string[], flags: RunFlags): Promise<void> {
  if (flags.listInterfaces) return listInterfaces();
  const limit = positive(flags.count, '-c', 'packet count');
  const choice = dispatchChoice(flags);
  const slot = slotSize(flags.slotSize, 2048);
  if (flags.interface !== undefined) {
    if (flags.read !== undefined) throw new NetpdError('EINVAL', 'give -r FILE or -i IFACE, not both');
    return runLive(flags.interface, givenRules(flags.rule, flags.rulesFile) ?? [], choice, limit, slot, words, flags);
  }
  if (words.length > 0) throw new NetpdError('EINVAL', `unexpected "${words.join(' ')}": a trailing filter expression is for live capture (-i); for files use --rule NAME=EXPR`);
  for (const [key, flag] of LIVE_ONLY) {
    // -p is the negation of a default-true option: present when false.
    if (key === 'promiscuousMode' ? flags.promiscuousMode === false : flags[key] !== undefined) {
      throw new NetpdError('EINVAL', flag === '-w' ? '-w writes a live capture; it needs -i IFACE' : `${flag} is for live capture; it needs -i IFACE`);
    }
  }
  const file = flags.read ?? SAMPLE;
  const rules = givenRules(flags.rule, flags.rulesFile) ?? (flags.read === undefined ? sampleRules() : []);
  // The rules are compiled for the file's link type (its first interface's). Standard
  // input cannot be looked at twice: it is sized for Ethernet, and compiled again if it is not.
  const guess = file === '-' ? { linkType: 1, byteOrder: 'le' as const } : fileLinkType(file);
  const sizing = (f: { linkType: number; byteOrder: 'le' | 'be' }) => sizeForRules(rules, { filterType: choice.filterType, burstSize: BURST, savefile: true, ...f });
  const sized = sizing(guess);
  const arena = Arena.create({ slotSize: slot, slotCount: slotsFor(64 << 20, slot, 2 * BURST, 8192), controlBytes: sized.controlBytes });
  const reader = openCapture(file, arena);
  let pd: PacketDispatcher;
  try {
    oneLinkType(reader, file);
    const found = firstLinkType(reader);
    pd = countingDispatcher(arena, found.linkType === guess.linkType && found.byteOrder === guess.byteOrder ? sized : sizing(found), choice, found.linkType);
    // A file is there already: let the compiled classifier be ready before the first burst.
    await pd.jitReady();
  } catch (err) {
    reader.close();
    throw err;
  }
  let stop = false;
  const removeSignals = onStopSignal(() => { stop = true; });
  const bar = progressBar(file, flags.json === true);
  let firstTs = -1;
  let lastTs = -1;
  const started = process.hrtime.bigint();
  let result: Awaited<ReturnType<typeof readAll>>;
  try {
    result = await readAll(reader, arena, {
      limit,
      stopped: () => stop,
      tick: () => bar?.update(reader.offset),
      each: (vec, n) => {
        oneLinkType(reader, file);
        if (firstTs < 0) firstTs = tsSeconds(arena, vec[0]);
        lastTs = tsSeconds(arena, vec[n - 1]);
        pd.dispatchBurst(vec, n);
      },
    });
  } finally {
    bar?.stop();
    reader.close();
    removeSignals();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const span = lastTs > firstTs ? lastTs - firstTs : 0;
  const report = pd.stats();
  if (flags.json) process.stdout.write(`${JSON.stringify(jsonReport(report))}\n`);
  else process.stdout.write(table(`${displayName(file)}: ${report.in} packets over ${span.toFixed(3)} s of capture, dispatched in ${(seconds * 1000).toFixed(1)} ms`, report, arena, span));
  if (result.failure) throw result.failure;
}

/** A dispatcher whose owners only count (it keeps their counters), with the rules registered. */
function countingDispatcher(arena: Arena, sized: ReturnType<typeof sizeForRules>, choice: DispatchChoice, link: number): PacketDispatcher {
  const count = { pushBatch: () => {} };
  const pd = PacketDispatcher.create({ arena, defaultNetio: count, filterType: choice.filterType, jit: choice.jit, linkType: link, ...sized.dispatcher });
  registerRules(pd, sized.rules, count);
  return pd;
}

// run -i IFACE: the same owners and report over a live interface. The trailing
// expression is the kernel's filter; -c stops after COUNT packets reached the owners.
async function runLive(iface: string, rules: Rule[], choice: DispatchChoice, limit: number, slot: number, words: string[], flags: RunFlags): Promise<void> {
  const kernelFilter = expression(words, flags.file);
  const wanted = linkType(flags.linktype);
  const bufferKiB = flags.bufferSize === undefined ? undefined : positive(flags.bufferSize, '-B', 'ring size in KiB');
  const snaplen = flags.snaplen === undefined ? undefined : positive(flags.snaplen, '-s', 'snapshot length in bytes');
  // The socket's link type (113 for any) decides what the rules are compiled for, so the
  // socket opens first; its frames reach onBurst only once this function has returned to the event loop.
  let pd: PacketDispatcher | undefined;
  let writer: PcapWriter | undefined;
  let packets = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => { finish = resolve; });
  let failure: Error | undefined;
  const options: AfPacketOptions = {
    filter: kernelFilter === '' ? undefined : kernelFilter,
    promiscuous: flags.promiscuousMode !== false,
    snaplen,
    bufferBytes: bufferKiB === undefined ? undefined : bufferKiB * 1024,
    direction: flags.direction,
    onBurst(vec, n) {
      const k = Math.min(n, limit - packets);
      if (k <= 0 || !pd) return;
      pd.dispatchBurst(vec, k);
      writer?.writeBurst(pd.arena, vec, k);
      packets += k;
      if (packets >= limit) finish();
    },
  };
  const sizedFor = (link: number) => sizeForRules(rules, { filterType: choice.filterType, burstSize: BURST, linkType: link });
  // Sized for Ethernet first: the control region does not depend on the link type.
  const sized = sizedFor(iface === 'any' ? 113 : 1);
  const arena = Arena.create({ slotSize: slot, slotCount: slotsFor(512 << 20, slot, 4096, 65536), controlBytes: sized.controlBytes });
  const source = AfPacketSource.open(iface, { ...options, arena });
  try {
    if (wanted !== undefined && wanted !== source.linkType) {
      throw new NetpdError('ENOTSUP', `${iface} captures as ${linkTypeName(source.linkType)}, not ${linkTypeName(wanted)} (-y): netpd captures EN10MB from an interface and LINUX_SLL from any`);
    }
    const rulesFor = source.linkType === (iface === 'any' ? 113 : 1) ? sized : sizedFor(source.linkType);
    pd = countingDispatcher(arena, rulesFor, choice, source.linkType);
    writer = flags.write === undefined ? undefined : PcapWriter.create(flags.write, { nanosecond: true, linkType: source.linkType, snaplen });
  } catch (err) {
    source.close();
    throw err;
  }
  source.on('error', (err: Error) => { failure = err; finish(); });
  source.on('close', () => finish());
  const removeSignals = onStopSignal(() => finish());
  process.stderr.write(`listening on ${iface}, link-type ${linkTypeName(source.linkType)}${kernelFilter ? ` (kernel filter: ${kernelFilter})` : ''}, ${rules.length} rule${rules.length === 1 ? '' : 's'}\n`);
  const started = process.hrtime.bigint();
  try {
    await done;
  } finally {
    removeSignals();
    source.close();
    writer?.close();
  }
  if (failure) throw failure;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const live = source.stats();
  // Frames the kernel or the arena dropped came in too: every accepted frame is counted once.
  pd.countDrops('kernel', live.dropped.kernel);
  pd.countDrops('noslot', live.dropped.noslot);
  const report = pd.stats();
  if (flags.json) process.stdout.write(`${JSON.stringify({ ...jsonReport(report), kernel: live.kernel })}\n`);
  else {
    const head = `${iface}: ${report.in} packets in ${seconds.toFixed(3)} s (kernel: ${live.kernel.packets} accepted by the filter, ${live.kernel.drops} dropped)${writer ? `, ${writer.packetsWritten} written to ${flags.write}` : ''}`;
    process.stdout.write(table(head, report, arena, seconds));
  }
}

// run -D: like tcpdump -D, one interface a line — its number, name, state in brackets —
// and then its link type. The number is the kernel's interface index (tcpdump numbers
// its list 1, 2, 3, ...); "any" has none and is listed last, as tcpdump describes it.
function listInterfaces(): void {
  const lines = AfPacketSource.interfaces().map((i) => {
    const state = [i.up ? 'Up' : '', i.running ? 'Running' : '', i.loopback ? 'Loopback' : ''].filter(Boolean).join(', ') || 'none';
    return i.name === 'any'
      ? `any (Pseudo-device that captures on all interfaces) [${state}] ${i.linkTypeName}`
      : `${i.index}.${i.name} [${state}] ${i.linkTypeName}`;
  });
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** ENOTSUP when the capture's interfaces (so far) have more than one link type: the rules are compiled for one. */
function oneLinkType(reader: PcapReader, file: string): void {
  if (reader.mixedLinkTypes) {
    throw new NetpdError('ENOTSUP', `${displayName(file)} has interfaces of several link types (${linkTypeNames(reader)}); netpd run dispatches one link type (netpd filter takes each interface's)`);
  }
}

function tsSeconds(arena: Arena, slot: number): number {
  return arena.timestampSec(slot) + arena.timestampNsec(slot) / 1e9;
}
