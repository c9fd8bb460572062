// netpd filter -r FILE EXPR: the 1-based positions in the file of the packets the filter
// accepts (Wireshark's frame numbers); with -v the packets themselves, one line each as
// `tcpdump -n` prints them; with -w OUT the accepted packets written as a pcap, as
// `tcpdump -r FILE -w OUT EXPR` writes them (same link type and snapshot length,
// microsecond timestamps, tcpdump's default precision).
//
// The filter is a CaptureFilter: an expression is compiled for each interface's link type,
// so a pcapng with several link types filters each interface with its own code, and a
// link type netpd cannot compile for is ENOTSUP naming it. On a damaged file the packets
// before the damage are printed (or written) first, then the error.

import { Command } from 'commander';
import { NetpdError } from '../errors.js';
import { Arena } from '../arena.js';
import { parseDdd } from '../bpf.js';
import { CaptureFilter } from '../filter/capture-filter.js';
import { PcapWriter, type PcapReader } from '../pcap/index.js';
import { PacketPrinter } from '../print/index.js';
import { BURST, expression, linkTypeNames, openCapture, positive, readAll, readText } from './options.js';

interface FilterFlags {
  read?: string;
  write?: string;
  program?: string;
  file?: string;
  verbose?: boolean;
  numeric?: boolean;
  count?: string;
  optimize?: boolean;
}

/** libpcap's largest record: slots this large cut no packet before filtering. */
const SLOT = 262144;

export function filterCommand(): Command {
  return new Command('filter')
    .summary('print the positions of the packets a filter accepts, or write them')
    .description('Runs a pcap-filter expression (or a tcpdump -ddd program) over a capture file and prints the 1-based positions of the packets it accepts, one a line (Wireshark\'s frame numbers).')
    .argument('[expr...]', 'a pcap-filter expression (its words may come as separate arguments)')
    .option('-r, --read <file>', 'the capture file (pcap or pcapng; - for standard input)')
    .option('-w, --write <file>', 'write the accepted packets to FILE (pcap) instead of printing their positions')
    .option('-v, --verbose', 'print each accepted packet as tcpdump -n does, instead of its position')
    .option('-n, --numeric', 'accepted for tcpdump\'s habit: netpd resolves no names')
    .option('-c, --count <n>', 'stop after N accepted packets')
    .option('-F, --file <file>', 'read the expression from FILE (# starts a comment)')
    .option('--program <file>', 'run a program in tcpdump -ddd form instead of an expression')
    .option('-O, --no-optimize', 'compile without the optimizer (tcpdump -O; -O0 too)')
    .action((words: string[], flags: FilterFlags) => filter(words, flags));
}

async function filter(words: string[], flags: FilterFlags): Promise<void> {
  if (!flags.read) throw new NetpdError('EINVAL', 'filter needs -r FILE');
  const expr = expression(words, flags.file);
  if (!flags.program && expr === '') throw new NetpdError('EINVAL', 'filter needs an expression or --program FILE.ddd (or -F FILE)');
  if (flags.program && expr !== '') throw new NetpdError('EINVAL', 'give either an expression or --program, not both');
  const limit = positive(flags.count, '-c', 'packet count');
  const arena = Arena.create({ slotSize: SLOT, slotCount: BURST });
  const program = flags.program ? parseDdd(readText(flags.program, 'program file')) : expr;
  const reader = openCapture(flags.read, arena);
  let capture: CaptureFilter;
  try {
    // The byte order matters to the NULL link type's header.
    capture = new CaptureFilter(arena, program, { optimize: flags.optimize !== false, byteOrder: reader.byteOrder });
  } catch (err) {
    reader.close();
    throw err;
  }
  const out = arena.burstVector(BURST);
  // One printer for the run: tcpdump numbers a TCP connection's sequence numbers from its first packet printed.
  const printer = flags.verbose ? new PacketPrinter() : undefined;
  const lines: string[] = [];
  const flush = () => {
    if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
    lines.length = 0;
  };
  const file = flags.read;
  let writer: PcapWriter | undefined;
  let accepted = 0;
  let number = 0;
  let result: Awaited<ReturnType<typeof readAll>>;
  try {
    result = await readAll(reader, arena, {
      limit: Infinity,
      stopped: () => accepted >= limit,
      each: (vec, n) => {
        if (writer) oneLinkType(file, reader);
        capture.run(reader.interfaces, vec, n, out);
        for (let i = 0; i < n && accepted < limit; i++) {
          if (out[i] === 0) continue;
          accepted++;
          const slot = vec[i];
          if (flags.write !== undefined) {
            writer ??= createWriter(flags.write, file, reader);
            writer.writeBurst(arena, vec.subarray(i, i + 1), 1);
          }
          if (printer) lines.push(describe(printer, arena, slot, reader));
          else if (flags.write === undefined) lines.push(String(number + i + 1));
        }
        number += n;
        if (lines.length > 4096) flush();
      },
    });
  } finally {
    flush();
    reader.close();
    writer?.close();
  }
  // An empty result still writes a file, as tcpdump does.
  if (flags.write !== undefined && writer === undefined && result.failure === undefined) createWriter(flags.write, file, reader).close();
  if (result.failure) throw result.failure;
}

/** The -w file: the input's link type and snapshot length (one link type only: pcap has one). */
function createWriter(path: string, input: string, reader: PcapReader): PcapWriter {
  return PcapWriter.create(path, { linkType: oneLinkType(input, reader), snaplen: reader.snaplen || SLOT });
}

function oneLinkType(input: string, reader: PcapReader): number {
  if (reader.mixedLinkTypes) throw new NetpdError('ENOTSUP', `${input} has interfaces of several link types (${linkTypeNames(reader)}); a pcap file written with -w holds one`);
  return reader.linkType < 0 ? 1 : reader.linkType;
}

/** One packet as tcpdump -n prints it. */
function describe(printer: PacketPrinter, arena: Arena, slot: number, reader: PcapReader): string {
  const at = arena.dataOffset(slot);
  const capLen = arena.capLen(slot);
  const link = reader.interfaces[arena.ifIndex(slot)]?.linkType ?? reader.linkType;
  return printer.format(arena.bytes.subarray(at, at + capLen), capLen, arena.wireLen(slot), arena.timestampSec(slot), arena.timestampNsec(slot), link);
}
