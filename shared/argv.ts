/**
 * A tiny command-line splitter for the fast paths that start without `commander`
 * (whose Node compatibility imports cost ~20 ms of a process start here). It
 * accepts only positional words and the named options it is given; anything else
 * returns `null`, and the caller hands the arguments to the full parser, which
 * gives the proper usage errors. It imports nothing, on purpose.
 *
 * @module
 */

/** Words and option values of a plain command line. */
export interface PlainArgs {
  words: string[];
  /** The last value of each option given (`--name value` or `--name=value`). */
  options: Map<string, string>;
}

/**
 * Splits `args` into words and values of the options in `names`; `null` when an
 * unknown option appears or an option has no (or an empty) value.
 */
export function splitPlainArgs(
  args: readonly string[],
  names: readonly string[],
): PlainArgs | null {
  const words: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("-")) {
      words.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (!names.includes(name) || value === undefined || value === "") return null;
    options.set(name, value);
  }
  return { words, options };
}

/** `text` as an integer in `[min, max]`, or `null` (also when absent). */
export function intInRange(text: string | undefined, min: number, max: number): number | null {
  if (text === undefined || !/^\d+$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : null;
}
