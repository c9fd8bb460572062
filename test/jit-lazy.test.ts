// LazyModule: compiled code that follows changing rules without stalling dispatch —
// changes coalesce into one compile, code for stale rules is never installed, and a
// failure leaves the caller on its interpreter.
import { describe, it, expect } from 'vitest';
import { LazyModule } from '../bindings/jit/lazy.js';
import { CodeBuilder, ModuleBuilder } from '../bindings/jit/wasm.js';

/** A module whose `version()` returns `v`. */
function versionModule(v: number): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder();
  m.addFunction(new CodeBuilder([], ['i32']).i32Const(v), 'version');
  return m.bytes();
}

type Exports = { version(): number };

describe('LazyModule', () => {
  it('compiles once for a burst of changes, and only after the caller returns to the event loop', async () => {
    let rules = 0;
    let builds = 0;
    const lazy = new LazyModule<Exports>({ build: () => { builds++; return versionModule(rules); }, imports: {}, onError: (e) => { throw e; } });
    for (let i = 1; i <= 100; i++) {
      rules = i;
      lazy.invalidate();
      expect(lazy.current).toBeNull();
    }
    expect(builds).toBe(0);
    await lazy.ready();
    expect(builds).toBe(1);
    expect(lazy.compiles).toBe(1);
    expect(lazy.current?.version()).toBe(100);
  });

  it('drops the code the moment the rules change, and never installs code for stale rules', async () => {
    let rules = 1;
    const lazy = new LazyModule<Exports>({ build: () => versionModule(rules), imports: {}, onError: (e) => { throw e; } });
    lazy.invalidate();
    await lazy.ready();
    expect(lazy.current?.version()).toBe(1);
    rules = 2;
    lazy.invalidate();
    expect(lazy.current).toBeNull();
    // Let the build for 2 start compiling, then change the rules again before it lands.
    await new Promise((r) => setImmediate(r));
    rules = 3;
    lazy.invalidate();
    await lazy.ready();
    expect(lazy.current?.version()).toBe(3);
    expect(lazy.compiles).toBe(2);
  });

  it('reports a failed build or compile and leaves no code, so the caller keeps interpreting', async () => {
    const errors: unknown[] = [];
    let mode: 'throw' | 'garbage' | 'none' = 'throw';
    const lazy = new LazyModule<Exports>({
      build: () => {
        if (mode === 'throw') throw new Error('generator bug');
        if (mode === 'garbage') return new Uint8Array([0, 1, 2, 3]);
        return null;
      },
      imports: {},
      onError: (e) => errors.push(e),
    });
    lazy.invalidate();
    await lazy.ready();
    mode = 'garbage';
    lazy.invalidate();
    await lazy.ready();
    mode = 'none';
    lazy.invalidate();
    await lazy.ready();
    expect(lazy.current).toBeNull();
    expect(errors.map((e) => (e as Error).constructor.name)).toEqual(['Error', 'CompileError']);
    expect(lazy.compiles).toBe(0);
  });
});
