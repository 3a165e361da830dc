/**
 * Terminal colours that respect `NO_COLOR` (via `Deno.noColor`) and are off when
 * stderr is not a terminal.
 *
 * @module
 */

/** True when colour escapes should be written to stderr. */
export const useColor: boolean = !Deno.noColor && Deno.stderr.isTerminal();

function wrap(open: number, close: number) {
  return (text: string) => (useColor ? `\x1b[${open}m${text}\x1b[${close}m` : text);
}

/** Red text, for errors. */
export const red: (text: string) => string = wrap(31, 39);
/** Green text, for success. */
export const green: (text: string) => string = wrap(32, 39);
/** Yellow text, for warnings. */
export const yellow: (text: string) => string = wrap(33, 39);
/** Dim text, for secondary detail. */
export const dim: (text: string) => string = wrap(2, 22);
/** Bold text, for headings. */
export const bold: (text: string) => string = wrap(1, 22);
