// netpd bench dispatch -r FILE --rules-file RULES: how fast a dispatcher sorts a capture
// among the user's own rules (bench-dispatch.ts does the work and sizes the arena).

import { Command } from 'commander';
import { benchDispatch } from '../bench-dispatch.js';
import { addDispatchOptions } from './command.js';
import { dispatchChoice, givenRules, positive } from './options.js';
import { round } from './report.js';
import { NetpdError } from '../errors.js';

interface BenchFlags {
  read?: string;
  rulesFile?: string;
  json?: boolean;
  time?: string;
  filterType?: string;
  jit?: boolean;
}

export function benchCommand(): Command {
  const dispatch = new Command('dispatch')
    .summary('time a dispatcher over your own rules and capture')
    .description('Registers one owner per line of RULES (NAME=EXPR or EXPR; # comments), holds FILE\'s packets in the arena, dispatches them pass after pass, and reports the median time per packet.')
    .option('-r, --read <file>', 'the capture whose packets are dispatched')
    .option('--rules-file <file>', 'one rule a line: NAME=EXPR or EXPR, # comments')
    .option('--time <ms>', 'least time spent timing passes (default 1000)')
    .option('--json', 'print one JSON object as the last line');
  addDispatchOptions(dispatch).action((flags: BenchFlags) => bench(flags));
  return new Command('bench')
    .summary('benchmarks: bench dispatch')
    .description('Benchmarks on your own data.')
    .addCommand(dispatch);
}

async function bench(flags: BenchFlags): Promise<void> {
  if (!flags.read || !flags.rulesFile) throw new NetpdError('EINVAL', 'bench dispatch needs -r FILE and --rules-file RULES');
  const choice = dispatchChoice(flags);
  const r = await benchDispatch({
    file: flags.read,
    rules: givenRules(undefined, flags.rulesFile)!,
    ...choice,
    minTimeMs: flags.time === undefined ? undefined : positive(flags.time, '--time', 'number of milliseconds'),
  });
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ rules: r.rules, nsPerPacket: round(r.nsPerPacket, 2), mpps: round(r.mpps, 3), matched: r.matched })}\n`);
  } else {
    process.stdout.write(`${r.rules} rules (${choice.filterType}, ${r.jit ? 'compiled to WebAssembly' : 'interpreted'}), ${r.packets} packets held in the arena, ` +
      `median of ${r.passes} passes: ${r.nsPerPacket.toFixed(1)} ns/packet, ${r.mpps.toFixed(2)} M packets/s; ` +
      `${r.matched} of ${r.packets} matched an owner; registered in ${r.registerMs.toFixed(1)} ms` +
      `${choice.jit ? `, compiled in ${r.compileMs.toFixed(1)} ms` : ''}\n`);
  }
}
