/**
 * What a scan returns, and how per-probe outcome codes become it. Kept apart
 * from `scan.ts` (which runs scans in every mode) so that the output formats, the
 * records and the fast path load none of the execution machinery.
 *
 * @module
 */
import type { Mode } from "../shared/mode.ts";
import type { PortState } from "./verdict.ts";
import type { EngineName } from "./engines.ts";
import { OUTCOMES } from "./verdict.ts";

/** One probe: a host (index into the targets) and a port. */
export interface Probe {
  host: number;
  port: number;
}

/** One scanned port. */
export interface PortResult {
  port: number;
  state: PortState;
  reason: string;
  service: string | null;
  /** With `--banners`, for open ports: what the port said first (printable), or null. */
  banner?: string | null;
}

/** Counts per state. */
export type StateCounts = Record<PortState, number>;

/** Everything learned about one address. */
export interface HostResult {
  /** The target as written (host name, CIDR or address). */
  target: string;
  address: string;
  /** Every scanned port, ascending. */
  ports: PortResult[];
  counts: StateCounts;
}

/** The result of a scan. */
export interface ScanResult {
  hosts: HostResult[];
  portsPerHost: number;
  probes: number;
  mode: Mode;
  engine: EngineName;
  workers: number;
  concurrency: number;
  timeoutMs: number;
  retries: number;
  elapsedMs: number;
  /** Stopped by its signal: only the ports decided by then are listed. */
  interrupted: boolean;
}

/** Counts states in a list of port results. */
export function countStates(ports: { state: PortState }[]): StateCounts {
  const counts: StateCounts = { open: 0, closed: 0, filtered: 0 };
  for (const port of ports) counts[port.state]++;
  return counts;
}

/** The port result of a decided probe (outcome `code`, see `verdict.ts`). */
export function portResult(
  port: number,
  code: number,
  services: ReadonlyMap<number, string>,
): PortResult {
  const { state, reason } = OUTCOMES[code];
  return { port, state, reason, service: services.get(port) ?? null };
}

/**
 * Per host, the decided probes (`codes[i]` not 0) as port results, ascending.
 * Unless `interrupted`, every probe must be decided.
 */
export function hostResults(
  targets: readonly { target: string; address: string }[],
  probes: readonly Probe[],
  codes: Uint8Array,
  services: ReadonlyMap<number, string>,
  interrupted: boolean,
): HostResult[] {
  const perHost: PortResult[][] = targets.map(() => []);
  let decided = 0;
  probes.forEach((probe, index) => {
    if (codes[index] === 0) return;
    decided++;
    perHost[probe.host].push(portResult(probe.port, codes[index], services));
  });
  if (!interrupted && decided !== probes.length) {
    throw new Error(`internal error: ${probes.length - decided} probes without a result`);
  }
  return targets.map((target, host): HostResult => {
    const ports = perHost[host];
    // Probes run in port order unless randomized: sort only when needed.
    if (ports.some((p, i) => i > 0 && ports[i - 1].port > p.port)) {
      ports.sort((a, b) => a.port - b.port);
    }
    return { target: target.target, address: target.address, ports, counts: countStates(ports) };
  });
}
