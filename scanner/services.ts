/**
 * Service names for TCP ports from the system's services database
 * (`/etc/services`), as nmap prints them in its SERVICE column.
 *
 * @module
 */

/** A services(5) line's name and TCP port (comments never match: a name cannot start with `#`). */
const TCP_ENTRY = /^[ \t]*([^\s#]+)[ \t]+(\d+)\/tcp(?=[\s#]|$)/gm;

/**
 * Parses a services(5) file into a map from TCP port to the first name listed for
 * it (one pass of one regular expression: a one-port scan's start-up pays for it).
 */
export function parseServices(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const [, name, digits] of text.matchAll(TCP_ENTRY)) {
    const port = Number(digits);
    if (port >= 1 && port <= 65535 && !names.has(port)) names.set(port, name);
  }
  return names;
}

/**
 * Loads the services database from `path`; an empty map when it is missing or
 * unreadable (service names are a convenience, never a reason to fail a scan).
 */
export function loadServices(path = "/etc/services"): Map<number, string> {
  try {
    return parseServices(Deno.readTextFileSync(path));
  } catch {
    return new Map();
  }
}
