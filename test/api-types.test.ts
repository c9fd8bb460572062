// The public TypeScript surface as a user compiles against it: test/fixtures/api-types/
// usage.ts imports netpd's built declarations (dist/*.d.ts) and is type-checked with
// `tsc --noEmit`: typed events (a misspelt event name or a wrong listener does not
// compile: each such line carries @ts-expect-error, which tsc reports when unused),
// `using`/`await using`, `for await` over bursts. And the declarations carry no
// member marked @internal (tsconfig's stripInternal). dist/ is what `npm test` builds
// first (pretest); run `npx tsc -p tsconfig.json` before running this file alone.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');

function files(dir: string, ext: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => join(e.parentPath, e.name));
}

describe('the public declarations', () => {
  it('type-check what a user writes, and refuse misspelt events and wrong listeners', () => {
    expect(existsSync(join(dist, 'index.d.ts')), 'dist/index.d.ts is missing: build with npx tsc -p tsconfig.json').toBe(true);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'test', 'fixtures', 'api-types', 'tsconfig.json')], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('carry no member marked @internal', () => {
    const sources = files(join(root, 'bindings'), '.ts').filter((f) => readFileSync(f, 'utf8').includes('@internal'));
    expect(sources.length, 'no source marks anything @internal: this test proves nothing').toBeGreaterThan(0);
    const declarations = files(dist, '.d.ts');
    expect(declarations.length).toBeGreaterThan(10);
    const leaking = declarations.filter((f) => readFileSync(f, 'utf8').includes('@internal'));
    expect(leaking.map((f) => f.slice(root.length + 1))).toEqual([]);
  });
});
