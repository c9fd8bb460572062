// A compiled classifier that follows a changing rule set without ever stalling dispatch.
//
// Registration only marks the code stale; compilation runs later, once, for however many
// changes came in meanwhile (a burst of 1,000 registrations compiles once), and
// asynchronously (WebAssembly.compile), so the event loop keeps dispatching. Until the
// new module is ready `current` is null and the caller runs its interpreter, which is
// the reference the compiled code must agree with. A module that finishes compiling
// after the rules changed again is thrown away: code for stale rules never runs.

export interface LazyModuleOptions {
  /** The module's bytes for the rules as they are now, or null when no code is needed. */
  build: () => Uint8Array<ArrayBuffer> | null;
  /** Imports the module is instantiated with (the arena's memory). */
  imports: WebAssembly.Imports;
  /** Called when building or compiling fails; the interpreter keeps running. */
  onError: (err: unknown) => void;
}

export class LazyModule<E extends WebAssembly.Exports> {
  private generation = 0;
  private scheduled = false;
  private pending = 0;
  private instance: E | null = null;
  private waiters: (() => void)[] = [];
  private readonly options: LazyModuleOptions;
  /** Modules compiled so far (for tests and stats). */
  compiles = 0;

  constructor(options: LazyModuleOptions) {
    this.options = options;
  }

  /** The compiled code for the current rules, or null while it is being compiled. */
  get current(): E | null {
    return this.instance;
  }

  /** The rules changed: drop the code now, compile anew soon. */
  invalidate(): void {
    this.generation++;
    this.instance = null;
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.compile());
  }

  /** Resolves once the code matches the rules as they are when it resolves. */
  ready(): Promise<void> {
    if (!this.scheduled && this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private compile(): void {
    this.scheduled = false;
    const generation = this.generation;
    let bytes: Uint8Array<ArrayBuffer> | null;
    try {
      bytes = this.options.build();
    } catch (err) {
      this.options.onError(err);
      this.settle();
      return;
    }
    if (bytes === null) {
      this.settle();
      return;
    }
    this.pending++;
    WebAssembly.compile(bytes)
      .then((module) => {
        if (generation !== this.generation) return;
        this.instance = new WebAssembly.Instance(module, this.options.imports).exports as E;
        this.compiles++;
      })
      .catch((err: unknown) => {
        if (generation === this.generation) this.options.onError(err);
      })
      .finally(() => {
        this.pending--;
        this.settle();
      });
  }

  private settle(): void {
    if (this.scheduled || this.pending > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
