/**
 * Service names for TCP ports from the system's services database
 * (`/etc/services`), as nmap prints them in its SERVICE column.
 *
 * @module
 */

/** A services(5) line's name and TCP port (comments never match: a name cannot start with `#`). */
const TCP_ENTRY = /^[ \t]*([^\s#]+)[ \t]+(\d+)\/tcp(?=[\s#]|$)/gm;

/** Port lists up to this long are looked up alone (a few-port scan parses only their lines). */
const FEW_PORTS = 64;

/**
 * Parses a services(5) file into a map from TCP port to the first name listed for
 * it (one pass of one regular expression: a one-port scan's start-up pays for it).
 * With `only` (a few ports), the map holds those ports' names alone: the pattern
 * then matches only their lines, and the cold parse of the whole file (2-4 ms of a
 * one-port scan) is skipped.
 */
export function parseServices(text: string, only?: readonly number[]): Map<number, string> {
  const names = new Map<number, string>();
  if (only?.length === 0) return names;
  const pattern = only !== undefined && only.length <= FEW_PORTS
    ? new RegExp(TCP_ENTRY.source.replace("(\\d+)", `(${only.map(Math.trunc).join("|")})`), "gm")
    : TCP_ENTRY;
  for (const [, name, digits] of text.matchAll(pattern)) {
    const port = Number(digits);
    if (port >= 1 && port <= 65535 && !names.has(port)) names.set(port, name);
  }
  return names;
}

/**
 * Loads the services database from `path`; an empty map when it is missing or
 * unreadable (service names are a convenience, never a reason to fail a scan).
 */
export function loadServices(
  path = "/etc/services",
  only?: readonly number[],
): Map<number, string> {
  try {
    return parseServices(Deno.readTextFileSync(path), only);
  } catch {
    return new Map();
  }
}
