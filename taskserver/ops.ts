/**
 * The study's three operations as pure functions, and the request rule
 * `choice|payload` → reply. Nothing here touches the network.
 *
 * - `1` change case: swaps upper and lower case per code point, Unicode-aware
 *   (as Python's `str.swapcase`: `ß` → `SS`).
 * - `2` evaluate: a safe arithmetic evaluator (`evaluate.ts`); never
 *   `eval`, never a property lookup.
 * - `3` reverse: by user-perceived characters (grapheme clusters), so emoji
 *   families and combining accents survive.
 *
 * @module
 */
import { EvalError, type EvalLimits, evaluate } from "./evaluate.ts";

export {
  DEFAULT_EVAL_LIMITS,
  EvalError,
  type EvalLimits,
  evaluate,
  EXPRESSION_NAMES,
  formatValue,
} from "./evaluate.ts";

/** Operation names, by the study's menu number. */
export const OPERATIONS = { "1": "swapcase", "2": "eval", "3": "reverse" } as const;

/** One of the three operations. */
export type Operation = (typeof OPERATIONS)[keyof typeof OPERATIONS];

/**
 * The operation a choice names, or undefined. An own-property lookup: `in` also
 * matches inherited members (`constructor|1+1` answered 2).
 */
function choiceOperation(choice: string): Operation | undefined {
  return Object.hasOwn(OPERATIONS, choice)
    ? OPERATIONS[choice as keyof typeof OPERATIONS]
    : undefined;
}

/** Parses an operation: `1|2|3` or `swapcase|eval|reverse` (also `case`, `expr`, `rev`). */
export function parseOperation(text: string): Operation | undefined {
  const t = text.trim().toLowerCase();
  const byChoice = choiceOperation(t);
  if (byChoice) return byChoice;
  const aliases: Record<string, Operation> = {
    swapcase: "swapcase",
    case: "swapcase",
    eval: "eval",
    evaluate: "eval",
    expr: "eval",
    reverse: "reverse",
    rev: "reverse",
  };
  return Object.hasOwn(aliases, t) ? aliases[t] : undefined;
}

/** The menu number of an operation (what goes before `|` on the wire). */
export function operationChoice(op: Operation): string {
  return op === "swapcase" ? "1" : op === "eval" ? "2" : "3";
}

/** Swaps upper and lower case, code point by code point, as Python's `str.swapcase`. */
export function swapCase(text: string): string {
  let out = "";
  let asciiRun = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      asciiRun++;
      continue;
    }
    if (asciiRun > 0) out += swapAscii(text, i - asciiRun, i);
    asciiRun = 0;
    const cp = text.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    if (cp > 0xffff) i++;
    const lower = ch.toLowerCase();
    const upper = ch.toUpperCase();
    if (ch === lower && ch !== upper) out += upper;
    else if (ch === upper && ch !== lower) out += lower;
    else out += ch;
  }
  if (asciiRun > 0) out += swapAscii(text, text.length - asciiRun, text.length);
  return out;
}

function swapAscii(text: string, start: number, end: number): string {
  let out = "";
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    out += String.fromCharCode(
      c >= 0x41 && c <= 0x5a ? c + 32 : c >= 0x61 && c <= 0x7a ? c - 32 : c,
    );
  }
  return out;
}

let segmenter: Intl.Segmenter | undefined;

/** Reverses by grapheme clusters, so `e\u0301` and `👨‍👩‍👧` stay whole. */
export function reverseText(text: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(text) && !text.includes("\r")) {
    return text.split("").reverse().join("");
  }
  segmenter ??= new Intl.Segmenter("en", { granularity: "grapheme" });
  const parts: string[] = [];
  for (const { segment } of segmenter.segment(text)) parts.push(segment);
  return parts.reverse().join("");
}

/** Options for {@linkcode processRequest}. */
export interface RequestOptions {
  /** Operation for a request without `|` (the study's benchmark client sends a bare string). */
  defaultOp?: Operation;
  limits?: EvalLimits;
}

/**
 * Answers one request `choice|payload` (already decoded text): the result, or
 * `Error: <reason>`. Never throws.
 */
export function processRequest(request: string, options: RequestOptions = {}): string {
  const bar = request.indexOf("|");
  let op: Operation | undefined;
  let payload: string;
  if (bar === -1) {
    if (!options.defaultOp) {
      return "Error: missing '|' (expected choice|payload, e.g. 3|hello)";
    }
    op = options.defaultOp;
    payload = request;
  } else {
    const choice = request.slice(0, bar);
    op = choiceOperation(choice.trim());
    if (!op) {
      return `Error: unknown choice '${choice.slice(0, 20)}' ` +
        "(expected 1 change case, 2 evaluate, 3 reverse)";
    }
    payload = request.slice(bar + 1);
  }
  if (payload === "") return "Error: empty payload";
  try {
    switch (op) {
      case "swapcase":
        return swapCase(payload);
      case "reverse":
        return reverseText(payload);
      default:
        return evaluate(payload, options.limits);
    }
  } catch (error) {
    if (error instanceof EvalError) return `Error: ${error.message}`;
    return `Error: ${error instanceof Error ? error.message : String(error)}`;
  }
}
