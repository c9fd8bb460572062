// A parser for the pcap-filter language that accepts what libpcap's grammar.y accepts
// and builds the tree in ast.ts. Notes on the grammar it follows:
//  - `and` and `or` have the SAME precedence and group left to right:
//    `a or b and c` is `(a or b) and c`.
//  - after `and`/`or` a bare value (an "id") takes the qualifiers of the term before
//    it: `host a or b`, `tcp port 80 or 443`; a term without qualifiers (`ip`, a
//    relation) leaves none to take, so `ip and 10.0.0.1` is a syntax error.
//  - a parenthesised expression leaves behind the qualifiers in force before it.
//  - in arithmetic, `|` binds loosest, then `&`, shifts, `+ -`, `* /`, unary minus.
// Where the grammar's first token leaves a choice open (`(`, `not`, a number), the
// parser tries a term first and an id second, as the LALR automaton would decide.
//
// Depth. The grammar is recursive (a parenthesis, `not`, unary minus, the operand of
// `%` or `^`, a load inside a load's index each open a level), but the call stack is
// not: every rule that may descend is a generator, which yields the rule it descends
// into to drive(), and drive() keeps the rules in progress on a stack of its own; so
// nesting costs heap, never stack, whatever the thread's stack size. Chains (`a or b
// or c`, `1+2+3`) are loops. Past MAX_NESTING levels the parser stops with EFILTER,
// as libpcap's stops past its stack of 10,000 entries ("memory exhausted", which
// tcpdump meets between 5,000 and 12,000 levels, depending on the construct).
// Arithmetic is memoized by position: after a failed attempt at a group, `((((1)))) =
// len` reads each level's arithmetic again, and without the memo that is quadratic.

import { NetpdError } from '../errors.js';
import { tokenize, type Token } from './lexer.js';
import { QERR, type Arith, type Node, type Proto, type Qual, type Dir, type AddrQual, type IdValue } from './ast.js';

const PNAMES = new Set<string>([
  'link', 'ip', 'arp', 'rarp', 'sctp', 'tcp', 'udp', 'icmp', 'igmp', 'igrp', 'pim', 'vrrp', 'carp',
  'atalk', 'aarp', 'decnet', 'lat', 'sca', 'moprc', 'mopdl', 'ip6', 'icmp6', 'ah', 'esp', 'iso', 'esis',
  'isis', 'l1', 'l2', 'iih', 'lsp', 'snp', 'csnp', 'psnp', 'clnp', 'stp', 'ipx', 'netbeui', 'radio',
]);
const AQUALS = new Set(['host', 'net', 'port', 'portrange']);

class Backtrack extends Error {}

/** The deepest nesting the parser accepts (see the essay above). */
export const MAX_NESTING = 5000;

/** A rule in progress: it yields the rules it descends into, and returns its result. */
type Step<T> = Generator<Step<unknown>, T, unknown>;

/** `yield* descend(rule)`: the rule's result (or what it throws), computed by drive(). */
function* descend<T>(rule: Step<T>): Generator<Step<unknown>, T, unknown> {
  return (yield rule) as T;
}

/** Runs a rule and every rule it descends into, on an explicit stack. */
function drive<T>(root: Step<T>): T {
  const stack: Step<unknown>[] = [root];
  let value: unknown;
  let error: unknown;
  let failed = false;
  for (;;) {
    const top = stack[stack.length - 1];
    let r: IteratorResult<Step<unknown>, unknown>;
    try {
      r = failed ? top.throw(error) : top.next(value);
      failed = false;
    } catch (e) {
      stack.pop();
      if (stack.length === 0) throw e;
      failed = true;
      error = e;
      continue;
    }
    if (!r.done) {
      stack.push(r.value);
      value = undefined;
    } else {
      stack.pop();
      if (stack.length === 0) return r.value as T;
      value = r.value;
    }
  }
}

type Parsed = { node: Node; q: Qual };

export class Parser {
  private readonly tokens: Token[];
  private i = 0;
  private readonly src: string;
  /** Levels of nesting open at the current token. */
  private depth = 0;
  /** arith(minLevel) by token index, minLevel and depth: its result, or what it threw, and where it stopped. */
  private readonly arithMemo = new Map<number, { value: Arith; end: number } | { error: unknown; end: number }>();

  constructor(src: string) {
    this.src = src;
    this.tokens = tokenize(src);
  }

  /** Parses the whole expression; an empty expression matches every packet (null). */
  parse(): Node | null {
    if (this.peek().kind === 'eof') return null;
    try {
      const { node } = drive(this.expr(QERR));
      if (this.peek().kind !== 'eof') this.fail();
      return node;
    } catch (e) {
      if (e instanceof Backtrack) this.fail();
      throw e;
    }
  }

  private peek(o = 0): Token { return this.tokens[Math.min(this.i + o, this.tokens.length - 1)]; }
  private next(): Token { return this.tokens[this.i++]; }
  private isKw(word: string, o = 0): boolean { const t = this.peek(o); return t.kind === 'kw' && t.value === word; }
  private isAnd(): boolean { return this.isKw('and') || this.peek().kind === '&&'; }
  private isOr(): boolean { return this.isKw('or') || this.peek().kind === '||'; }
  private isNot(): boolean { return this.isKw('not') || this.peek().kind === '!'; }

  /** A syntax error at the current token (thrown as a backtrack inside attempts). */
  private fail(): never {
    const t = this.peek();
    const where = t.kind === 'eof' ? 'at the end of the expression' : `at "${t.text}" (column ${t.pos + 1})`;
    throw new NetpdError('EFILTER', `syntax error ${where} in "${this.src}"`, { details: { position: t.pos, token: t.text } });
  }

  /** Runs a rule one level of nesting deeper: EFILTER past MAX_NESTING levels. */
  private *nested<T>(rule: Step<T>): Step<T> {
    if (this.depth >= MAX_NESTING) {
      const t = this.peek();
      throw new NetpdError('EFILTER', `expression nests deeper than ${MAX_NESTING} levels at "${t.text}" (column ${t.pos + 1})`, { details: { position: t.pos, depth: MAX_NESTING } });
    }
    this.depth++;
    try {
      return yield* descend(rule);
    } finally {
      this.depth--;
    }
  }

  private expect(kind: Token['kind']): Token {
    if (this.peek().kind !== kind) throw new Backtrack();
    return this.next();
  }

  /** The rule's result, or undefined (and the input as it was) if it met a syntax error. */
  private *attempt<T>(rule: Step<T>): Step<T | undefined> {
    const save = this.i;
    try {
      return yield* descend(rule);
    } catch (e) {
      if (!(e instanceof Backtrack) && !(e instanceof NetpdError && e.message.startsWith('EFILTER: syntax error'))) throw e;
      this.i = save;
      return undefined;
    }
  }

  // expr: term | expr (and|or) (term | id)
  private *expr(q: Qual): Step<Parsed> {
    let left = yield* descend(this.term(q));
    for (;;) {
      const op = this.isAnd() ? 'and' : this.isOr() ? 'or' : null;
      if (!op) return left;
      this.next();
      const ctx = left.q;
      const right = (yield* this.attempt(this.term(ctx))) ?? (yield* descend(this.id(ctx)));
      left = { node: { t: op, l: left.node, r: right.node }, q: right.q };
    }
  }

  // term: not term | rterm
  private *term(q: Qual): Step<Parsed> {
    const t = this.peek();
    if (this.isNot()) {
      this.next();
      const inner = yield* this.nested(this.term(q));
      return { node: { t: 'not', e: inner.node }, q: inner.q };
    }
    if (t.kind === '(') {
      const grouped = yield* this.attempt(this.group(q));
      if (grouped) return grouped;
      return { node: yield* descend(this.relation()), q: QERR };
    }
    if (t.kind === 'num' || t.kind === '-' || this.isKw('len')) return { node: yield* descend(this.relation()), q: QERR };
    if (t.kind !== 'kw') throw new Backtrack();
    const kw = t.value as string;
    switch (kw) {
      case 'broadcast': case 'multicast':
        this.next();
        return { node: { t: kw, proto: 'default', pos: t.pos }, q: QERR };
      case 'less': case 'greater': {
        this.next();
        return { node: { t: kw, value: this.number() }, q: QERR };
      }
      case 'byte': {
        this.next();
        const index = this.number();
        const op = this.next();
        if (!['&', '|', '<', '>', '='].includes(op.kind)) { this.i--; this.fail(); }
        return { node: { t: 'byte', index, op: op.kind as '&', value: this.number() }, q: QERR };
      }
      case 'vlan': case 'mpls': case 'pppoes': {
        this.next();
        const value = yield* this.attempt(this.pnum());
        return { node: { t: kw, value, pos: t.pos }, q: QERR };
      }
      case 'pppoed':
        this.next();
        return { node: { t: 'pppoed' }, q: QERR };
      case 'llc': {
        this.next();
        const kind = this.peek().kind === 'id' ? (this.next().value as string) : undefined;
        return { node: { t: 'llc', kind, pos: t.pos }, q: QERR };
      }
      case 'inbound': case 'outbound':
        this.next();
        return { node: { t: kw }, q: QERR };
      case 'ifindex':
        this.next();
        return { node: { t: 'ifindex', value: this.number() }, q: QERR };
      case 'geneve': case 'vxlan':
        this.next();
        yield* this.attempt(this.pnum());
        return { node: { t: 'unsupported', what: kw, pos: t.pos }, q: QERR };
    }
    // head id | pname | pname[...] relation | pname broadcast/multicast
    let proto: Proto = 'default';
    if (PNAMES.has(kw)) {
      if (this.peek(1).kind === '[') return { node: yield* descend(this.relation()), q: QERR };
      this.next();
      proto = kw as Proto;
      if (this.isKw('broadcast') || this.isKw('multicast')) {
        const b = this.next();
        return { node: { t: b.value as 'broadcast', proto, pos: t.pos }, q: QERR };
      }
    }
    let dir: Dir = 'default';
    if (this.isKw('src') || this.isKw('dst')) {
      const first = this.next().value as 'src' | 'dst';
      dir = first;
      if ((this.isKw('or') || this.isKw('and')) && (this.isKw(first === 'src' ? 'dst' : 'src', 1))) {
        dir = this.next().value === 'or' ? 'or' : 'and';
        this.next();
      }
    }
    let addr: AddrQual = 'default';
    if (this.peek().kind === 'kw' && AQUALS.has(this.peek().value as string)) addr = this.next().value as AddrQual;
    else if (dir === 'default' && (this.isKw('proto') || this.isKw('protochain') || this.isKw('gateway'))) addr = this.next().value as AddrQual;
    if (proto !== 'default' && dir === 'default' && addr === 'default') {
      return { node: { t: 'proto', proto, pos: t.pos }, q: QERR };
    }
    if (dir === 'default' && addr === 'default') throw new Backtrack();
    return yield* descend(this.id({ proto, dir, addr }));
  }

  // '(' expr ')' in a term: the group leaves the qualifiers before it in force.
  private *group(q: Qual): Step<Parsed> {
    this.next();
    const e = yield* this.nested(this.expr(q));
    this.expect(')');
    return { node: e.node, q };
  }

  // id: nid | pnum | ( pid ) ; nid also allows `not id`
  private *id(q: Qual): Step<Parsed> {
    const t = this.peek();
    if (this.isNot()) {
      this.next();
      const inner = yield* this.nested(this.id(q));
      return { node: { t: 'not', e: inner.node }, q: inner.q };
    }
    if (t.kind === '(') {
      const n = yield* this.attempt(this.pnum());
      if (n !== undefined) return { node: { t: 'id', q, v: { kind: 'num', value: n }, pos: t.pos }, q };
      this.next();
      const inner = yield* this.nested(this.pid(q));
      this.expect(')');
      return inner;
    }
    return { node: { t: 'id', q, v: this.value(q), pos: t.pos }, q };
  }

  // pid: nid | qid and id | qid or id (every element takes the same qualifiers); qid is
  // pnum or pid, so the first element is a nid or a number, never a parenthesised id.
  private *pid(q: Qual): Step<Parsed> {
    const t = this.peek();
    let left: Parsed = t.kind === '(' ? { node: { t: 'id', q, v: { kind: 'num', value: yield* descend(this.pnum()) }, pos: t.pos }, q } : yield* descend(this.id(q));
    for (;;) {
      const op = this.isAnd() ? 'and' : this.isOr() ? 'or' : null;
      if (!op) return left;
      this.next();
      const right = yield* descend(this.id(q));
      left = { node: { t: op, l: left.node, r: right.node }, q };
    }
  }

  private value(q: Qual): IdValue {
    const t = this.next();
    switch (t.kind) {
      case 'num': return { kind: 'num', value: t.value as number };
      case 'id': return { kind: 'name', text: t.value as string };
      case 'eid': return { kind: 'mac', text: t.text };
      case 'hid': {
        this.modifierCheck(q, t, this.peek().kind === '/' ? ' and prefix length' : this.isKw('mask') ? ' and netmask' : '');
        if (this.peek().kind === '/') { this.next(); return { kind: 'ipv4', text: t.text, prefix: this.number() }; }
        if (this.isKw('mask')) {
          this.next();
          const m = this.next();
          if (m.kind !== 'hid') { this.i--; this.fail(); }
          return { kind: 'ipv4', text: t.text, mask: m.text };
        }
        return { kind: 'ipv4', text: t.text };
      }
      case 'hid6': {
        this.modifierCheck(q, t, this.peek().kind === '/' ? ' and prefix length' : '');
        if (this.peek().kind === '/') { this.next(); return { kind: 'ipv6', text: t.text, prefix: this.number() }; }
        return { kind: 'ipv6', text: t.text };
      }
      default:
        this.i--;
        throw new Backtrack();
    }
  }

  // grammar.y refuses port/portrange/proto/protochain qualifiers on IP addresses.
  private modifierCheck(q: Qual, t: Token, what: string): void {
    if (q.addr === 'port' || q.addr === 'portrange' || q.addr === 'proto' || q.addr === 'protochain') {
      throw new NetpdError('EFILTER', `'${q.addr}' modifier applied to IP address${what} "${t.text}"`, { details: { position: t.pos } });
    }
  }

  private number(): number {
    const t = this.next();
    if (t.kind !== 'num') { this.i--; throw new Backtrack(); }
    return t.value as number;
  }

  // pnum: NUM | ( pnum )
  private *pnum(): Step<number> {
    if (this.peek().kind === '(') {
      this.next();
      const v = yield* this.nested(this.pnum());
      this.expect(')');
      return v;
    }
    return this.number();
  }

  // arth relop arth
  private *relation(): Step<Node> {
    const l = yield* descend(this.arith());
    const op = this.next();
    const table: Record<string, ['jgt' | 'jge' | 'jeq', boolean]> = {
      '>': ['jgt', false], '>=': ['jge', false], '=': ['jeq', false],
      '<=': ['jgt', true], '<': ['jge', true], '!=': ['jeq', true],
    };
    const entry = table[op.kind];
    if (!entry) { this.i--; throw new Backtrack(); }
    const r = yield* descend(this.arith());
    return { t: 'rel', code: entry[0], reversed: entry[1], l, r };
  }

  /** climb(minLevel), memoized by position, level and depth (see the essay above). */
  private *arith(minLevel = 0): Step<Arith> {
    const key = (this.i * 8 + minLevel) * (MAX_NESTING + 1) + this.depth;
    const seen = this.arithMemo.get(key);
    if (seen) {
      this.i = seen.end;
      if ('error' in seen) throw seen.error;
      return seen.value;
    }
    try {
      const value = yield* this.climb(minLevel);
      this.arithMemo.set(key, { value, end: this.i });
      return value;
    } catch (error) {
      this.arithMemo.set(key, { error, end: this.i });
      throw error;
    }
  }

  // Precedence climbing over yacc's levels: | < & < << >> < + - < * / (see unary for % ^).
  private *climb(minLevel: number): Step<Arith> {
    let left = yield* descend(this.unary());
    for (;;) {
      const op = this.peek().kind;
      const level = LEVEL[op];
      if (level === undefined || level < minLevel) return left;
      this.next();
      const right = yield* descend(this.arith(level + 1));
      left = { t: 'binop', op: op as '+', l: left, r: right };
    }
  }

  // In grammar.y, '%' and '^' have no precedence, so yacc always shifts them: they take
  // the operand just before them and everything after (`a + b % c * d` is
  // `a + (b % (c * d))`).
  private *unary(): Step<Arith> {
    let left = yield* descend(this.primary());
    while (this.peek().kind === '%' || this.peek().kind === '^') {
      const op = this.next().kind as '%' | '^';
      left = { t: 'binop', op, l: left, r: yield* this.nested(this.arith()) };
    }
    return left;
  }

  private *primary(): Step<Arith> {
    const t = this.peek();
    if (t.kind === '-') {
      this.next();
      return { t: 'neg', e: yield* this.nested(this.unary()) };
    }
    if (t.kind === 'num') { this.next(); return { t: 'num', value: t.value as number }; }
    if (this.isKw('len')) { this.next(); return { t: 'len' }; }
    if (t.kind === '(') {
      this.next();
      const e = yield* this.nested(this.arith());
      this.expect(')');
      return e;
    }
    if (t.kind === 'kw' && PNAMES.has(t.value as string) && this.peek(1).kind === '[') {
      this.next();
      this.next();
      const index = yield* this.nested(this.arith());
      let size = 1;
      if (this.peek().kind === ':') {
        this.next();
        size = this.number();
      }
      this.expect(']');
      return { t: 'load', proto: t.value as Proto, index, size, pos: t.pos };
    }
    throw new Backtrack();
  }
}

const LEVEL: Partial<Record<string, number>> = {
  '|': 0, '&': 1, '<<': 2, '>>': 2, '+': 3, '-': 3, '*': 4, '/': 4,
};

/** Parses a pcap-filter expression; null for the empty expression (match everything). */
export function parseFilter(src: string): Node | null {
  return new Parser(src).parse();
}
