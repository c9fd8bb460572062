// Every ```js example in README.md runs as written. Each block is saved as an .mjs file in a
// temporary project whose node_modules/netpd is this repository (so `import ... from
// 'netpd'` resolves through package.json's exports to dist/, as it does for a user, and
// 'node_modules/netpd/samples/sample.pcap' is the sample a user has after install), run
// with node from that project, and must exit 0 with nothing on stderr but process
// warnings. A block preceded by `<!-- example: needs root -->` needs root (live capture)
// and is skipped, saying so, without it. dist/ is what `npm test` builds first (pretest).
import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');

interface Example { index: number; line: number; code: string; needsRoot: boolean }

/** The ```js blocks of a Markdown text, with the line each starts on and its marker comment. */
function examples(markdown: string): Example[] {
  const lines = markdown.split('\n');
  const found: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```js') continue;
    const end = lines.findIndex((l, j) => j > i && l.trim() === '```');
    if (end < 0) throw new Error(`README.md line ${i + 1}: a js block that never ends`);
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === '') before--;
    const marker = before >= 0 ? /^<!-- example: (.*) -->$/.exec(lines[before].trim()) : null;
    found.push({ index: found.length + 1, line: i + 1, code: lines.slice(i + 1, end).join('\n') + '\n', needsRoot: marker?.[1].includes('needs root') ?? false });
    i = end;
  }
  return found;
}

// NETPD_README points the test at another copy (to see it fail on an old README, say).
const all = examples(readFileSync(process.env.NETPD_README ?? join(root, 'README.md'), 'utf8'));
const isRoot = process.getuid?.() === 0;
const project = mkdtempSync(join(tmpdir(), 'netpd-readme-'));
mkdirSync(join(project, 'node_modules'));
symlinkSync(root, join(project, 'node_modules', 'netpd'), 'dir');
writeFileSync(join(project, 'package.json'), '{ "type": "module", "private": true }\n');
afterAll(() => rmSync(project, { recursive: true, force: true }));

describe('README.md examples', () => {
  it('has js examples, each importing netpd', () => {
    expect(all.length).toBeGreaterThanOrEqual(3);
    for (const e of all) expect(e.code, `example at README.md:${e.line}`).toMatch(/from 'netpd'/);
  });

  for (const e of all) {
    const title = `example ${e.index} (README.md line ${e.line}) runs and exits 0`;
    if (e.needsRoot && !isRoot) {
      it.skip(title, () => {});
      console.log(`readme-examples: skipped example ${e.index} (README.md line ${e.line}): it needs root (live capture)`);
      continue;
    }
    it(title, () => {
      const file = join(project, `example-${e.index}.mjs`);
      writeFileSync(file, e.code);
      const r = spawnSync(process.execPath, [file], { cwd: project, encoding: 'utf8', timeout: 60_000 });
      // Process warnings (the 'error' rule) are allowed; anything else on stderr is a failure.
      const stderr = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^\(node:\d+\) |^\(Use `node --trace-warnings/.test(l)).join('\n');
      expect({ status: r.status, signal: r.signal, stderr }, `README.md:${e.line}\n${r.stdout.slice(-2000)}`).toEqual({ status: 0, signal: null, stderr: '' });
    });
  }
});
