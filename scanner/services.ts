/**
 * Service names for TCP ports from the system's services database
 * (`/etc/services`), as nmap prints them in its SERVICE column.
 *
 * @module
 */

/** Parses a services(5) file into a map from TCP port to the first name listed for it. */
export function parseServices(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split("\n")) {
    const fields = line.replace(/#.*/, "").trim().split(/\s+/);
    if (fields.length < 2) continue;
    const match = /^(\d+)\/tcp$/.exec(fields[1]);
    if (!match) continue;
    const port = Number(match[1]);
    if (port >= 1 && port <= 65535 && !names.has(port)) names.set(port, fields[0]);
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
