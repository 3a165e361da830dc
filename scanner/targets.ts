/**
 * Targets and port lists for `scanner`: parsing of `-p` port specs, IPv4 and
 * IPv6 literals, CIDR blocks and host names (resolved once, through the system
 * resolver so `/etc/hosts` counts). Pure functions except {@linkcode resolveTargets}.
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";

/** Highest TCP port. */
export const MAX_PORT = 65535;
/** The default port list, 1-1024 (the study's "1024 ports"). */
export const DEFAULT_PORTS = "1-1024";
/** A CIDR block with more addresses than this needs `--force` (a /16 for IPv4). */
export const CIDR_FORCE_LIMIT = 65536;
/** No CIDR block may expand to more addresses than this, even with `--force`. */
export const CIDR_HARD_LIMIT = 1 << 24;

/**
 * Parses an nmap-style port list: `22,80,1000-2000`, `-` (all), `-100` (1-100),
 * `1000-` (1000-65535). Returns the ports ascending, without repeats.
 *
 * @throws {UsageError} naming the bad item: port 0 or above 65535, `a-b`, a
 * reversed range, an empty list.
 */
export function parsePorts(spec: string, option = "-p"): number[] {
  const text = spec.trim();
  const bad = (item: string, why: string) =>
    new UsageError(`Invalid ${option} '${spec}': '${item}' ${why}`);
  if (text === "") throw new UsageError(`Invalid ${option} '${spec}': the port list is empty`);
  if (text === "-") return range(1, MAX_PORT);
  const ranges: [number, number][] = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") throw bad(raw, "is an empty item");
    const match = /^(\d*)(-?)(\d*)$/.exec(item);
    if (!match || (match[1] === "" && match[3] === "" && match[2] === "")) {
      throw bad(item, "is not a port or a range like 1000-2000");
    }
    const [, startText, dash, endText] = match;
    if (dash === "" && startText === "") throw bad(item, "is not a port");
    const start = startText === "" ? 1 : Number(startText);
    const end = dash === "" ? start : endText === "" ? MAX_PORT : Number(endText);
    for (const port of [start, end]) {
      if (port < 1 || port > MAX_PORT) {
        throw bad(item, `is out of range: ports are 1 to ${MAX_PORT}`);
      }
    }
    if (end < start) throw bad(item, `is a reversed range (${start} > ${end})`);
    ranges.push([start, end]);
  }
  // Ascending, each port once: overlapping ranges merge (no pass over all 65535 ports).
  ranges.sort((a, b) => a[0] - b[0]);
  const ports: number[] = [];
  let next = 1;
  for (const [start, end] of ranges) {
    for (let port = Math.max(start, next); port <= end; port++) ports.push(port);
    next = Math.max(next, end + 1);
  }
  return ports;
}

/** Removes the ports of `exclude` from `ports`, keeping order. */
export function excludePorts(ports: number[], exclude: number[]): number[] {
  const drop = new Set(exclude);
  return ports.filter((port) => !drop.has(port));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Fisher-Yates shuffle of a copy, with an injectable random source (for tests). */
export function shuffled<T>(items: readonly T[], random: () => number = Math.random): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Parses a dotted IPv4 address into a 32-bit number, or `null` if it is not one. */
export function parseIPv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return null;
    value = value * 256 + Number(part);
  }
  return value;
}

/** Formats a 32-bit number as a dotted IPv4 address. */
export function formatIPv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/**
 * The hex groups of an IPv6 address written with colons only (no dotted tail),
 * `::` expanded to the zero groups it stands for: 8 groups when the text is valid.
 */
export function ipv6Groups(text: string): string[] {
  const [head, tail] = text.includes("::") ? text.split("::") : [text, null];
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === null || tail === "" ? [] : tail.split(":");
  return tail === null
    ? headGroups
    : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups];
}

/** Parses an IPv6 address into a 128-bit bigint, or `null` if it is not one. */
export function parseIPv6(text: string): bigint | null {
  if (!text.includes(":") || !/^[0-9a-fA-F:.]+$/.test(text)) return null;
  let canonical: string;
  try {
    // The URL parser validates and canonicalises IPv6 literals (including ::ffff:1.2.3.4).
    canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  const groups = ipv6Groups(canonical);
  if (groups.length !== 8) return null;
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n);
}

/** Formats a 128-bit bigint as a canonical (compressed) IPv6 address. */
export function formatIPv6(value: bigint): string {
  const hex = Array.from(
    { length: 8 },
    (_, i) => ((value >> BigInt(16 * (7 - i))) & 0xffffn).toString(16),
  ).join(":");
  return new URL(`http://[${hex}]/`).hostname.slice(1, -1);
}

/** What one target word turned into. */
export type TargetSpec =
  | { kind: "address"; text: string; address: string; family: 4 | 6 }
  | { kind: "cidr"; text: string; family: 4 | 6; first: bigint; count: bigint }
  | { kind: "name"; text: string };

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/;

/**
 * Parses one target word (no commas): an IPv4 or IPv6 literal (IPv6 may be in
 * brackets), a CIDR block, or a host name.
 *
 * @throws {UsageError} for a malformed CIDR or a word that is none of these, or
 * for a block above /16 size without `force`.
 */
export function parseTarget(word: string, force = false): TargetSpec {
  const text = word.trim();
  if (text === "") throw new UsageError(`Invalid target '${word}': it is empty`);
  const slash = text.indexOf("/");
  if (slash >= 0) {
    const base = text.slice(0, slash);
    const bitsText = text.slice(slash + 1);
    const v4 = parseIPv4(base);
    const v6 = v4 === null ? parseIPv6(base) : null;
    const family = v4 !== null ? 4 : v6 !== null ? 6 : null;
    if (family === null) {
      throw new UsageError(`Invalid CIDR '${text}': '${base}' is not an IPv4 or IPv6 address`);
    }
    const width = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > width) {
      throw new UsageError(
        `Invalid CIDR '${text}': the prefix length '${bitsText}' must be 0 to ${width}`,
      );
    }
    const hostBits = BigInt(width - Number(bitsText));
    const count = 1n << hostBits;
    const value = family === 4 ? BigInt(v4!) : v6!;
    const first = (value >> hostBits) << hostBits;
    if (count > BigInt(CIDR_HARD_LIMIT)) {
      throw new UsageError(
        `Invalid CIDR '${text}': ${count} addresses is more than this scanner expands (${CIDR_HARD_LIMIT})`,
      );
    }
    if (count > BigInt(CIDR_FORCE_LIMIT) && !force) {
      throw new UsageError(
        `CIDR '${text}' holds ${count} addresses (larger than a /16): add --force to scan it`,
      );
    }
    return { kind: "cidr", text, family, first, count };
  }
  if (parseIPv4(text) !== null) return { kind: "address", text, address: text, family: 4 };
  const unbracketed = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v6 = parseIPv6(unbracketed);
  if (v6 !== null) return { kind: "address", text, address: formatIPv6(v6), family: 6 };
  if (/^[\d.]+$/.test(text)) {
    throw new UsageError(`Invalid target '${text}': not a valid IPv4 address`);
  }
  if (!HOSTNAME.test(text)) {
    throw new UsageError(`Invalid target '${text}': not an address, a CIDR block or a host name`);
  }
  return { kind: "name", text };
}

/** Splits target arguments on commas and whitespace and parses each word. */
export function parseTargetList(words: string[], force = false): TargetSpec[] {
  const specs: TargetSpec[] = [];
  for (const word of words) {
    for (const part of word.split(/[,\s]+/)) {
      if (part !== "") specs.push(parseTarget(part, force));
    }
  }
  return specs;
}

/** Reads an `-iL` list: one or more targets per line, blank lines and `#` comments ignored. */
export function parseTargetFile(text: string): string[] {
  return text.split(/\r?\n/)
    .map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line !== "");
}

function resolverReason(code: string | undefined): string {
  if (code === undefined || code === "ENOTFOUND" || code === "EAI_NONAME") {
    return "host name not found";
  }
  if (code === "EAI_AGAIN") return "name resolution failed (EAI_AGAIN: no DNS answer)";
  return `name resolution failed (${code})`;
}

/** One address to scan, with the target word it came from. */
export interface ScanTarget {
  /** The target as the user wrote it (host name, CIDR or address). */
  target: string;
  /** The address connected to. */
  address: string;
  family: 4 | 6;
}

/** A target that could not be resolved, with the reason. */
export interface UnresolvedTarget {
  target: string;
  reason: string;
}

/** Resolves a host name to its addresses (all families the filter allows). */
export type Resolver = (name: string) => Promise<{ address: string; family: number }[]>;

/** The system resolver (getaddrinfo: `/etc/hosts`, then DNS). */
export const systemResolver: Resolver = async (name) => {
  // Loaded on first use: Node's DNS module costs start-up time that scans of
  // literal addresses never need.
  const { lookup } =
    await (import(String("node:dns/promises")) as Promise<typeof import("node:dns/promises")>);
  return await lookup(name, { all: true, verbatim: true });
};

/**
 * Expands parsed targets into addresses: CIDR blocks into every address, host
 * names resolved once (all addresses, or only IPv4 with `family: 4`, only IPv6
 * with `family: 6`). Repeated addresses are scanned once. Names that do not
 * resolve are returned in `unresolved`, never silently dropped.
 */
export async function resolveTargets(
  specs: TargetSpec[],
  options: { family?: 4 | 6; resolver?: Resolver } = {},
): Promise<{ targets: ScanTarget[]; unresolved: UnresolvedTarget[] }> {
  const resolver = options.resolver ?? systemResolver;
  const targets: ScanTarget[] = [];
  const unresolved: UnresolvedTarget[] = [];
  const seen = new Set<string>();
  const wanted = (family: number) => options.family === undefined || options.family === family;
  const add = (target: string, address: string, family: 4 | 6) => {
    if (seen.has(address)) return;
    seen.add(address);
    targets.push({ target, address, family });
  };
  for (const spec of specs) {
    if (spec.kind === "address") {
      if (!wanted(spec.family)) {
        unresolved.push({
          target: spec.text,
          reason: `is an IPv${spec.family} address (-${options.family} given)`,
        });
      } else add(spec.text, spec.address, spec.family);
    } else if (spec.kind === "cidr") {
      if (!wanted(spec.family)) {
        unresolved.push({
          target: spec.text,
          reason: `is an IPv${spec.family} block (-${options.family} given)`,
        });
        continue;
      }
      for (let i = 0n; i < spec.count; i++) {
        const value = spec.first + i;
        add(
          spec.text,
          spec.family === 4 ? formatIPv4(Number(value)) : formatIPv6(value),
          spec.family,
        );
      }
    } else {
      let found: { address: string; family: number }[];
      try {
        found = await resolver(spec.text);
      } catch (error) {
        const code = (error as { code?: string }).code;
        unresolved.push({ target: spec.text, reason: resolverReason(code) });
        continue;
      }
      const usable = found.filter((entry) => entry.family === 4 || entry.family === 6)
        .filter((entry) => wanted(entry.family));
      if (usable.length === 0) {
        unresolved.push({
          target: spec.text,
          reason: options.family ? `has no IPv${options.family} address` : "has no address",
        });
      }
      for (const entry of usable) {
        const address = entry.family === 6 ? formatIPv6(parseIPv6(entry.address)!) : entry.address;
        add(spec.text, address, entry.family as 4 | 6);
      }
    }
  }
  return { targets, unresolved };
}
