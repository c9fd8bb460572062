// Commander pieces more than one verb uses.

import { Option, type Command } from 'commander';
import { NetpdError } from '../errors.js';

/**
 * --filter-type bpf|dpf and --jit/--no-jit (run and bench dispatch). Commander lets the
 * last of --jit and --no-jit win; giving both is refused instead, as a contradiction.
 */
export function addDispatchOptions(cmd: Command): Command {
  const seen = new Set<string>();
  return cmd
    .addOption(new Option('--filter-type <type>', 'bpf: first matching rule wins; dpf: rules merged into a trie, the most specific wins').default(undefined, 'bpf'))
    .option('--jit', 'compile the rules to WebAssembly (the default)')
    .option('--no-jit', 'keep the rules interpreted')
    .on('option:jit', () => seen.add('jit'))
    .on('option:no-jit', () => seen.add('no-jit'))
    .hook('preAction', () => {
      if (seen.size === 2) throw new NetpdError('EINVAL', 'give --jit or --no-jit, not both');
    });
}
