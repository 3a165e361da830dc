/**
 * Choice `2` of the task server: a safe arithmetic evaluator with Python's
 * semantics for what it accepts (integers of any size up to a bound, floats,
 * `//`, `%`, `**`, comparisons, a few math functions and constants). Never
 * `eval`, never a property lookup; every limit (length, depth, integer size) is
 * bounded, so hostile input fails in microseconds.
 *
 * @module
 */

/** Limits that bound the work a single request can cause. */
export interface EvalLimits {
  /** Longest expression, in characters. */
  maxLength: number;
  /** Deepest nesting of parentheses, unary signs and function calls. */
  maxDepth: number;
  /** Largest integer result, in bits (Python ints are unbounded; ours are not). */
  maxBits: number;
}

/** Default evaluator limits: 1,000 characters, depth 100, 4,096-bit integers. */
export const DEFAULT_EVAL_LIMITS: EvalLimits = { maxLength: 1000, maxDepth: 100, maxBits: 4096 };

/** An evaluation error; its message is what the client sees after `Error: `. */
export class EvalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EvalError";
  }
}

// Values keep Python's int/float distinction: ints are exact (bigint), floats doubles.
type Value = bigint | number;

const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E, tau: 2 * Math.PI };

const FUNCTIONS: Record<string, { arity: [number, number]; fn: (args: Value[]) => Value }> = {
  abs: { arity: [1, 1], fn: ([x]) => (typeof x === "bigint" ? (x < 0n ? -x : x) : Math.abs(x)) },
  sqrt: {
    arity: [1, 1],
    fn: ([x]) => {
      const v = Number(x);
      if (v < 0) throw new EvalError("math domain error");
      return Math.sqrt(v);
    },
  },
  exp: { arity: [1, 1], fn: ([x]) => Math.exp(Number(x)) },
  log: {
    arity: [1, 2],
    fn: ([x, base]) => {
      const v = Number(x);
      if (v <= 0 || (base !== undefined && Number(base) <= 0)) {
        throw new EvalError("math domain error");
      }
      return base === undefined ? Math.log(v) : Math.log(v) / Math.log(Number(base));
    },
  },
  log10: { arity: [1, 1], fn: ([x]) => positive(x, Math.log10) },
  log2: { arity: [1, 1], fn: ([x]) => positive(x, Math.log2) },
  sin: { arity: [1, 1], fn: ([x]) => Math.sin(Number(x)) },
  cos: { arity: [1, 1], fn: ([x]) => Math.cos(Number(x)) },
  tan: { arity: [1, 1], fn: ([x]) => Math.tan(Number(x)) },
  floor: { arity: [1, 1], fn: ([x]) => toInt(x, Math.floor) },
  ceil: { arity: [1, 1], fn: ([x]) => toInt(x, Math.ceil) },
  round: { arity: [1, 1], fn: ([x]) => toInt(x, roundHalfEven) },
  min: { arity: [1, 64], fn: (args) => args.reduce((a, b) => (compare(b, a) < 0 ? b : a)) },
  max: { arity: [1, 64], fn: (args) => args.reduce((a, b) => (compare(b, a) > 0 ? b : a)) },
};

/** The names an expression may use (functions, then constants). */
export const EXPRESSION_NAMES = [...Object.keys(FUNCTIONS), ...Object.keys(CONSTANTS)];

function positive(x: Value, f: (v: number) => number): number {
  const v = Number(x);
  if (v <= 0) throw new EvalError("math domain error");
  return f(v);
}

function toInt(x: Value, f: (v: number) => number): bigint {
  if (typeof x === "bigint") return x;
  if (!Number.isFinite(x)) throw new EvalError("cannot convert float infinity or NaN to integer");
  return BigInt(f(x));
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function compare(a: Value, b: Value): number {
  if (typeof a === "bigint" && typeof b === "bigint") return a < b ? -1 : a > b ? 1 : 0;
  const x = Number(a), y = Number(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function bitLength(n: bigint): number {
  return (n < 0n ? -n : n).toString(2).length;
}

type Token =
  | { kind: "num"; value: Value; at: number }
  | { kind: "name"; value: string; at: number }
  | { kind: "op"; value: string; at: number }
  | { kind: "end"; at: number };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === " " || c === "\t") {
      i++;
      continue;
    }
    const number = /^(?:\d+(?:_\d+)*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(
      text.slice(i, i + 400),
    );
    if (number) {
      const raw = number[0].replaceAll("_", "");
      const isFloat = /[.eE]/.test(raw);
      tokens.push({ kind: "num", value: isFloat ? Number(raw) : BigInt(raw), at: i });
      i += number[0].length;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z_0-9]*/.exec(text.slice(i, i + 64));
    if (name) {
      tokens.push({ kind: "name", value: name[0], at: i });
      i += name[0].length;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (two === "**" || two === "//") {
      tokens.push({ kind: "op", value: two, at: i });
      i += 2;
      continue;
    }
    if ("+-*/%(),".includes(c)) {
      tokens.push({ kind: "op", value: c, at: i });
      i++;
      continue;
    }
    throw new EvalError(`invalid character '${c}' at position ${i + 1}`);
  }
  tokens.push({ kind: "end", at: text.length });
  return tokens;
}

class Parser {
  #pos = 0;
  #depth = 0;
  constructor(readonly tokens: Token[], readonly limits: EvalLimits) {}

  parse(): Value {
    const value = this.expr();
    const next = this.peek();
    if (next.kind !== "end") throw new EvalError(`unexpected ${describe(next)}`);
    return value;
  }

  peek(): Token {
    return this.tokens[this.#pos];
  }

  isOp(value: string): boolean {
    const t = this.peek();
    return t.kind === "op" && t.value === value;
  }

  enter(): void {
    if (++this.#depth > this.limits.maxDepth) {
      throw new EvalError(`expression nested deeper than ${this.limits.maxDepth} levels`);
    }
  }

  expr(): Value {
    let left = this.term();
    while (this.isOp("+") || this.isOp("-")) {
      const op = (this.tokens[this.#pos++] as { value: string }).value;
      left = this.binary(op, left, this.term());
    }
    return left;
  }

  term(): Value {
    let left = this.unary();
    while (this.isOp("*") || this.isOp("/") || this.isOp("%") || this.isOp("//")) {
      const op = (this.tokens[this.#pos++] as { value: string }).value;
      left = this.binary(op, left, this.unary());
    }
    return left;
  }

  unary(): Value {
    if (this.isOp("-") || this.isOp("+")) {
      const op = (this.tokens[this.#pos++] as { value: string }).value;
      this.enter();
      const value = this.unary();
      this.#depth--;
      return op === "-" ? (typeof value === "bigint" ? -value : -value) : value;
    }
    return this.power();
  }

  power(): Value {
    const base = this.primary();
    if (this.isOp("**")) {
      this.#pos++;
      this.enter();
      const exponent = this.unary(); // right-associative, and `2**-1` is allowed
      this.#depth--;
      return this.binary("**", base, exponent);
    }
    return base;
  }

  primary(): Value {
    const t = this.peek();
    if (t.kind === "num") {
      this.#pos++;
      return t.value;
    }
    if (t.kind === "op" && t.value === "(") {
      this.#pos++;
      this.enter();
      const value = this.expr();
      this.#depth--;
      if (!this.isOp(")")) throw new EvalError(`expected ')' but found ${describe(this.peek())}`);
      this.#pos++;
      return value;
    }
    if (t.kind === "name") {
      this.#pos++;
      if (this.isOp("(")) {
        const fn = Object.hasOwn(FUNCTIONS, t.value) ? FUNCTIONS[t.value] : undefined;
        if (!fn) throw new EvalError(`name '${t.value}' is not defined`);
        this.#pos++;
        this.enter();
        const args: Value[] = [];
        if (!this.isOp(")")) {
          args.push(this.expr());
          while (this.isOp(",")) {
            this.#pos++;
            args.push(this.expr());
          }
        }
        if (!this.isOp(")")) throw new EvalError(`expected ')' but found ${describe(this.peek())}`);
        this.#pos++;
        this.#depth--;
        if (args.length < fn.arity[0] || args.length > fn.arity[1]) {
          throw new EvalError(`${t.value}() takes ${arityText(fn.arity)} (${args.length} given)`);
        }
        return this.checked(fn.fn(args));
      }
      if (Object.hasOwn(CONSTANTS, t.value)) return CONSTANTS[t.value];
      throw new EvalError(`name '${t.value}' is not defined`);
    }
    throw new EvalError(`unexpected ${describe(t)}`);
  }

  checked(value: Value): Value {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new EvalError(Number.isNaN(value) ? "result is not a number" : "result too large");
    }
    if (typeof value === "bigint" && bitLength(value) > this.limits.maxBits) {
      throw new EvalError(`result too large (more than ${this.limits.maxBits} bits)`);
    }
    return value;
  }

  binary(op: string, a: Value, b: Value): Value {
    if (typeof a === "bigint" && typeof b === "bigint") return this.checked(intOp(op, a, b, this));
    const x = Number(a), y = Number(b);
    switch (op) {
      case "+":
        return this.checked(x + y);
      case "-":
        return this.checked(x - y);
      case "*":
        return this.checked(x * y);
      case "/":
        if (y === 0) throw new EvalError("division by zero");
        return this.checked(x / y);
      case "//":
        if (y === 0) throw new EvalError("division by zero");
        return this.checked(Math.floor(x / y));
      case "%": {
        if (y === 0) throw new EvalError("division by zero");
        const r = x % y;
        return this.checked(r !== 0 && (r < 0) !== (y < 0) ? r + y : r);
      }
      default: {
        if (x === 0 && y < 0) throw new EvalError("zero cannot be raised to a negative power");
        if (x < 0 && !Number.isInteger(y)) {
          throw new EvalError("negative number to a fractional power");
        }
        return this.checked(x ** y);
      }
    }
  }
}

function intOp(op: string, a: bigint, b: bigint, parser: Parser): Value {
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      if (bitLength(a) + bitLength(b) > parser.limits.maxBits + 1) {
        throw new EvalError(`result too large (more than ${parser.limits.maxBits} bits)`);
      }
      return a * b;
    case "/":
      if (b === 0n) throw new EvalError("division by zero");
      return Number(a) / Number(b);
    case "//": {
      if (b === 0n) throw new EvalError("division by zero");
      const q = a / b;
      return (a % b !== 0n) && ((a < 0n) !== (b < 0n)) ? q - 1n : q;
    }
    case "%": {
      if (b === 0n) throw new EvalError("division by zero");
      const r = a % b;
      return r !== 0n && (r < 0n) !== (b < 0n) ? r + b : r;
    }
    default: {
      if (b < 0n) {
        if (a === 0n) throw new EvalError("zero cannot be raised to a negative power");
        return Number(a) ** Number(b);
      }
      // Estimate the size before computing, so 9**9**9**9 fails at once.
      const bits = bitLength(a);
      if (bits > 1 && (bits - 1) * Number(b) > parser.limits.maxBits) {
        throw new EvalError(`result too large (more than ${parser.limits.maxBits} bits)`);
      }
      return a ** b;
    }
  }
}

function describe(t: Token): string {
  if (t.kind === "end") return "end of expression";
  return `'${String(t.value)}' at position ${t.at + 1}`;
}

function arityText([lo, hi]: [number, number]): string {
  if (lo === hi) return `exactly ${lo} argument${lo === 1 ? "" : "s"}`;
  return `${lo} to ${hi} arguments`;
}

/** Formats a value as Python's `str()` would: `6`, `3.5`, `2.0`, `1e-05`, `1e+16`. */
export function formatValue(value: Value): string {
  if (typeof value === "bigint") return value.toString();
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return `${value.toFixed(0)}.0`;
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    // Python pads the exponent to two digits.
    return value.toExponential().replace(/e([+-])(\d)$/, "e$10$2");
  }
  return String(value);
}

/**
 * Evaluates an arithmetic expression safely: numbers (ints exact, floats),
 * `+ - * / // % **`, parentheses, unary signs, functions
 * (`abs sqrt exp log log10 log2 sin cos tan floor ceil round min max`) and
 * constants (`pi e tau`). Input length, nesting depth and integer size are
 * bounded, so hostile input fails in microseconds.
 *
 * @throws {EvalError} with a message fit for `Error: <reason>`.
 */
export function evaluate(text: string, limits: EvalLimits = DEFAULT_EVAL_LIMITS): string {
  if (text.length > limits.maxLength) {
    throw new EvalError(`expression longer than ${limits.maxLength} characters`);
  }
  if (text.trim() === "") throw new EvalError("empty expression");
  return formatValue(new Parser(tokenize(text), limits).parse());
}
