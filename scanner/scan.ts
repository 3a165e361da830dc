/**
 * The scan: every (address, port) pair probed through the task runner in the
 * chosen execution mode, collected into per-host results. Never prints; reports
 * progress through a callback.
 *
 * @module
 */
import type { Mode } from "../shared/mode.ts";
import { runTasks } from "../shared/runner.ts";
import {
  MAX_CONNECTS_PER_ISOLATE,
  type PortState,
  type ProbeInput,
  type ProbeResult,
  probeTask,
} from "./probe.ts";
import type { ScanTarget } from "./targets.ts";
import { shuffled } from "./targets.ts";
import { loadServices } from "./services.ts";
import { connectsPerIsolate, openFileLimit } from "./limits.ts";

/** Default workers for thread and process modes. */
export const DEFAULT_WORKERS = 8;
/** Default probes in flight per worker (or in the one isolate for `async`). */
export const DEFAULT_CONCURRENCY = MAX_CONNECTS_PER_ISOLATE;

/**
 * The fastest correct mode for a scan of `probes` probes: `async` in this
 * isolate while one isolate's {@linkcode MAX_CONNECTS_PER_ISOLATE} connects cover
 * the scan, else `thread` with enough workers to keep up to
 * `maxWorkers × 128` connects in flight (filtered ports cost a whole timeout each,
 * so connects in flight, not cores, bound the scan).
 */
export function autoMode(
  probes: number,
  maxWorkers = DEFAULT_WORKERS,
): { mode: Mode; workers: number } {
  if (probes <= MAX_CONNECTS_PER_ISOLATE) return { mode: "async", workers: 1 };
  return {
    mode: "thread",
    workers: Math.min(maxWorkers, Math.ceil(probes / MAX_CONNECTS_PER_ISOLATE)),
  };
}

/**
 * Default extra attempts for ports that did not answer. On loopback a burst of
 * SYNs beyond the per-CPU backlog (`netdev_max_backlog`, 1000) loses some, and the
 * kernel resends only after 1 s: one retry keeps such a closed port from being
 * reported filtered (nmap retransmits for the same reason).
 */
export const DEFAULT_RETRIES = 1;
/** Default connect timeout: the study's 0.5 s. */
export const DEFAULT_TIMEOUT_MS = 500;

/** What to scan and how. */
export interface ScanOptions {
  targets: ScanTarget[];
  /** Ports, in the order to scan them (ascending unless `randomize`). */
  ports: number[];
  mode: Mode;
  workers?: number;
  concurrency?: number;
  timeoutMs?: number;
  retries?: number;
  /** New connects per second over the whole scan (0: unlimited). */
  rate?: number;
  /** Scan the ports of each host in random order. */
  randomize?: boolean;
  /** Module that registers `scanner.probe` (default: the main module). */
  entry?: string | URL;
  signal?: AbortSignal;
  /** Called as probes complete (at most every 1/100 of the work). */
  onProgress?: (done: number, total: number) => void;
  /** Service names by port (default: `/etc/services`). */
  services?: Map<number, string>;
  random?: () => number;
}

/** One scanned port. */
export interface PortResult {
  port: number;
  state: PortState;
  reason: string;
  service: string | null;
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
  workers: number;
  concurrency: number;
  timeoutMs: number;
  retries: number;
  elapsedMs: number;
  /** Set when `signal` stopped the scan: `hosts` then lists only the ports scanned so far. */
  interrupted?: boolean;
}

/** Counts states in a list of port results. */
export function countStates(ports: { state: PortState }[]): StateCounts {
  const counts: StateCounts = { open: 0, closed: 0, filtered: 0 };
  for (const port of ports) counts[port.state]++;
  return counts;
}

/**
 * Scans every port of every target. Results are exact in every mode: a probe
 * that fails for a reason that is no port state fails the scan with a message
 * naming the host and port, rather than being dropped or guessed.
 */
export async function scan(options: ScanOptions): Promise<ScanResult> {
  const started = performance.now();
  const { targets, mode } = options;
  const workers = mode === "thread" || mode === "process"
    ? Math.max(1, options.workers ?? DEFAULT_WORKERS)
    : 1;
  const concurrency = mode === "sequential"
    ? 1
    : Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const retries = options.retries ?? DEFAULT_RETRIES;
  const rate = (options.rate ?? 0) > 0 ? options.rate! / workers : 0;
  const random = options.random ?? Math.random;
  const portOrder = targets.map(
    () => (options.randomize ? shuffled(options.ports, random) : options.ports),
  );
  const total = targets.length * options.ports.length;
  const portIndex = new Map<number, number>(options.ports.map((port, i) => [port, i]));
  const states: (ProbeResult | undefined)[][] = targets.map(() => new Array(options.ports.length));

  function* inputs(): Generator<ProbeInput & { host: number }> {
    for (let host = 0; host < targets.length; host++) {
      for (const port of portOrder[host]) {
        yield { host, address: targets[host].address, port, timeoutMs, retries, rate, cap };
      }
    }
  }

  // Keep connects in flight under the open-file limit rather than meet EMFILE.
  const inFlight = Math.min(total, workers * Math.min(concurrency, MAX_CONNECTS_PER_ISOLATE));
  let cap: number | undefined;
  if (inFlight > 32) {
    const limit = await openFileLimit();
    if (limit !== null) {
      cap = Math.min(MAX_CONNECTS_PER_ISOLATE, connectsPerIsolate(limit, workers));
    }
  }

  let done = 0;
  const step = Math.max(1, Math.floor(total / 100));
  let interrupted = false;
  try {
    for await (
      const outcome of runTasks(probeTask, inputs(), {
        mode,
        workers,
        concurrency,
        entry: options.entry,
        signal: options.signal,
        batch: 256,
      })
    ) {
      if (!outcome.ok) throw outcome.error;
      const input = outcome.input as ProbeInput & { host: number };
      states[input.host][portIndex.get(input.port)!] = outcome.value;
      done++;
      if (options.onProgress && (done % step === 0 || done === total)) {
        options.onProgress(done, total);
      }
    }
  } catch (error) {
    // Stopped (SIGINT/SIGTERM): report the ports scanned so far.
    if (!options.signal?.aborted) throw error;
    interrupted = true;
  }

  const services = options.services ?? loadServices();
  const sortedPorts = options.ports.map((port, i) => ({ port, i })).sort((a, b) => a.port - b.port);
  const hosts = targets.map((target, host): HostResult => {
    const scanned = interrupted ? sortedPorts.filter(({ i }) => states[host][i]) : sortedPorts;
    const ports = scanned.map(({ port, i }): PortResult => {
      const result = states[host][i];
      if (!result) throw new Error(`internal error: no result for ${target.address}:${port}`);
      return {
        port,
        state: result.state,
        reason: result.reason,
        service: services.get(port) ?? null,
      };
    });
    return { target: target.target, address: target.address, ports, counts: countStates(ports) };
  });
  return {
    hosts,
    portsPerHost: options.ports.length,
    probes: interrupted ? done : total,
    mode,
    workers,
    concurrency,
    timeoutMs,
    retries,
    elapsedMs: performance.now() - started,
    ...(interrupted ? { interrupted } : {}),
  };
}
