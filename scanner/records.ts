/**
 * Scan results as records that can be written, read back, resumed and merged:
 * per host, every decided port grouped by outcome (`open/syn-ack`: `22,80`) as
 * compact port lists, and with `--banners` what each open port said first (`banners`:
 * `{"22": "SSH-2.0-…"}`, so a resumed or merged scan keeps them); JSON Lines findings; reading `-oJ`/`--json` documents,
 * `--jsonl` streams and `-oG` files back into results. Pure functions.
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";
import { PORT_STATES, type PortState } from "./verdict.ts";
import {
  countStates,
  type HostResult,
  type PortResult,
  type ScanResult,
  type StateCounts,
} from "./scan_result.ts";
import { parsePorts, type UnresolvedTarget } from "./targets.ts";
import { shownPorts } from "./output.ts";

/** Every decided port of a host, grouped by `state/reason`, as port lists. */
export type Outcomes = Record<string, string>;

/** `1-21,23,25-30` for ascending ports. */
export function compressPorts(ports: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ports.length;) {
    let j = i;
    while (j + 1 < ports.length && ports[j + 1] === ports[j] + 1) j++;
    parts.push(i === j ? `${ports[i]}` : `${ports[i]}-${ports[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** A host's ports as {@linkcode Outcomes}. */
export function outcomesOf(ports: readonly PortResult[]): Outcomes {
  const groups = new Map<string, number[]>();
  for (const port of [...ports].sort((a, b) => a.port - b.port)) {
    const key = `${port.state}/${port.reason}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(port.port);
  }
  return Object.fromEntries([...groups.entries()].sort().map(([k, v]) => [k, compressPorts(v)]));
}

/** What open ports said first, by port (null: nothing), for ports that were read. */
export type Banners = Record<string, string | null>;

/** `{ banners }` of the ports that have one (read or tried), or `{}` when none was read. */
export function bannersOf(ports: readonly PortResult[]): { banners?: Banners } {
  const read = ports.filter((port) => port.banner !== undefined);
  if (read.length === 0) return {};
  return { banners: Object.fromEntries(read.map((port) => [String(port.port), port.banner!])) };
}

/**
 * Expands {@linkcode Outcomes} into port results (services from `services`,
 * banners from `banners`).
 */
export function portsOf(
  outcomes: Outcomes,
  services: Map<number, string>,
  banners: Banners = {},
): PortResult[] {
  const ports: PortResult[] = [];
  for (const [key, spec] of Object.entries(outcomes)) {
    const slash = key.indexOf("/");
    const state = key.slice(0, slash) as PortState;
    if (slash < 0 || !PORT_STATES.includes(state)) {
      throw new UsageError(`Invalid outcome '${key}': expected state/reason, like open/syn-ack`);
    }
    const reason = key.slice(slash + 1);
    for (const port of parsePorts(spec, `outcome ${key}`)) {
      const result: PortResult = { port, state, reason, service: services.get(port) ?? null };
      const banner = banners[String(port)];
      if (banner !== undefined) result.banner = banner;
      ports.push(result);
    }
  }
  return ports.sort((a, b) => a.port - b.port);
}

/** One host as written in a JSON document (`--json`, `-oJ`). */
export interface HostRecord {
  target: string;
  address: string;
  counts: StateCounts;
  ports: PortResult[];
  outcomes?: Outcomes;
  banners?: Banners;
}

/** The hosts of a `--json`/`-oJ` document (`results.hosts`), checked. */
export function hostsOfDocument(doc: unknown, name: string): HostRecord[] {
  const results = (doc as { results?: { hosts?: unknown } } | null)?.results;
  const hosts = results?.hosts;
  if (!Array.isArray(hosts)) {
    throw new UsageError(`${name} not a scanner JSON document (no results.hosts)`);
  }
  for (const host of hosts) {
    if (typeof host?.address !== "string" || typeof host?.outcomes !== "object") {
      throw new UsageError(
        `${name} a host has no 'outcomes' (written by an older scanner?): cannot resume or merge it`,
      );
    }
  }
  return hosts as HostRecord[];
}

/**
 * Joins hosts from several documents: per address, the union of their outcomes
 * (a port decided twice keeps the first outcome). Hosts keep first-seen order.
 */
export function mergeHosts(
  lists: readonly HostRecord[][],
  services: Map<number, string>,
): HostResult[] {
  const byAddress = new Map<string, { target: string; ports: Map<number, PortResult> }>();
  for (const hosts of lists) {
    for (const host of hosts) {
      let entry = byAddress.get(host.address);
      if (!entry) {
        entry = { target: host.target, ports: new Map() };
        byAddress.set(host.address, entry);
      }
      for (const port of portsOf(host.outcomes ?? {}, services, host.banners)) {
        if (!entry.ports.has(port.port)) entry.ports.set(port.port, port);
      }
    }
  }
  return [...byAddress.entries()].map(([address, entry]) => {
    const ports = [...entry.ports.values()].sort((a, b) => a.port - b.port);
    return { target: entry.target, address, ports, counts: countStates(ports) };
  });
}

/** One `--jsonl` finding. */
export function jsonlPort(host: { target: string; address: string }, port: PortResult): string {
  return JSON.stringify({
    type: "port",
    target: host.target,
    address: host.address,
    port: port.port,
    state: port.state,
    reason: port.reason,
    service: port.service,
    ...(port.banner !== undefined ? { banner: port.banner } : {}),
  }) + "\n";
}

/** The closing `--jsonl` line: per host, counts and every outcome. */
export function jsonlSummary(
  hosts: readonly HostResult[],
  extra: Record<string, unknown>,
): string {
  return JSON.stringify({
    type: "summary",
    ...extra,
    hosts: hosts.map((host) => ({
      target: host.target,
      address: host.address,
      counts: host.counts,
      outcomes: outcomesOf(host.ports),
      ...bannersOf(host.ports),
    })),
  }) + "\n";
}

/** Reads a `--jsonl` stream back: the shown ports per host and the summary's counts. */
export function parseJsonl(text: string): HostRecord[] {
  const hosts = new Map<string, HostRecord>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const item = JSON.parse(line);
    if (item.type === "port") {
      let host = hosts.get(item.address);
      if (!host) {
        host = {
          target: item.target,
          address: item.address,
          counts: { open: 0, closed: 0, filtered: 0 },
          ports: [],
        };
        hosts.set(item.address, host);
      }
      host.ports.push({
        port: item.port,
        state: item.state,
        reason: item.reason,
        service: item.service,
        ...(item.banner !== undefined ? { banner: item.banner } : {}),
      });
    } else if (item.type === "summary") {
      for (const summary of item.hosts) {
        const host: HostRecord = hosts.get(summary.address) ??
          { target: summary.target, address: summary.address, counts: summary.counts, ports: [] };
        host.counts = summary.counts;
        host.outcomes = summary.outcomes;
        if (summary.banners) host.banners = summary.banners;
        hosts.set(summary.address, host);
      }
    }
  }
  for (const host of hosts.values()) host.ports.sort((a, b) => a.port - b.port);
  return [...hosts.values()];
}

/** Reads `-oG` lines back: address, target name, listed ports (state, service) and counts. */
export function parseGrepable(text: string): HostRecord[] {
  const hosts: HostRecord[] = [];
  for (const line of text.split("\n")) {
    const match =
      /^Host: (\S+) \(([^)]*)\)\tPorts: ([^\t]*)\tCounts: (\d+) open, (\d+) closed, (\d+) filtered/
        .exec(line);
    if (!match) continue;
    const [, address, name, list, open, closed, filtered] = match;
    const ports = list === "" ? [] : list.split(", ").map((item) => {
      const [port, state, , , service] = item.split("/");
      return {
        port: Number(port),
        state: state as PortState,
        reason: "",
        service: service || null,
      };
    });
    hosts.push({
      target: name === "" ? address : name,
      address,
      counts: { open: Number(open), closed: Number(closed), filtered: Number(filtered) },
      ports,
    });
  }
  return hosts;
}

/** The `results` of the `--json` document: every host, every shown port, the counts. */
export function jsonResults(
  result: ScanResult,
  show: PortState[],
  unresolved: UnresolvedTarget[] = [],
): Record<string, unknown> {
  return {
    hosts: result.hosts.map((host) => ({
      target: host.target,
      address: host.address,
      counts: host.counts,
      ports: shownPorts(host, show),
      // Every decided port, compactly: what --resume and `scanner merge` read back.
      outcomes: outcomesOf(host.ports),
      // What open ports said first (--banners): kept through --resume and merge.
      ...bannersOf(host.ports),
    })),
    unresolved,
    show,
    ports_per_host: result.portsPerHost,
    probes: result.probes,
    mode: result.mode,
    engine: result.engine,
    interrupted: result.interrupted,
    workers: result.workers,
    concurrency: result.concurrency,
    timeout_ms: result.timeoutMs,
    retries: result.retries,
    scan_ms: Math.round(result.elapsedMs * 1000) / 1000,
  };
}
