/**
 * The scan: every (address, port) pair probed by one of the two connect engines
 * in the chosen execution mode, collected into per-host results. Never prints;
 * reports progress and each decided port through callbacks. Interrupted by its
 * signal, it returns what was decided so far (`interrupted: true`).
 *
 * @module
 */
import type { Mode } from "../shared/mode.ts";
import type { ProbeInput } from "./probe.ts";
import type { ScanTarget } from "./targets.ts";
import { shuffled } from "./targets.ts";
import { loadServices } from "./services.ts";
import { Errno, libc, sockAddr } from "./libc.ts";
import {
  connectsPerIsolate,
  FEW_SOCKETS,
  MAX_CONNECTS_PER_ISOLATE,
  MAX_FFI_WINDOW,
  openFileLimit,
} from "./limits.ts";
import type { EngineName } from "./engines.ts";
import { connectedVerdict, outcomeCode, verdictForErrno } from "./verdict.ts";
import {
  hostResults,
  type PortResult,
  portResult,
  type Probe,
  type ScanResult,
} from "./scan_result.ts";
import type { FfiChunkInput } from "./ffi_chunk.ts";

export {
  countStates,
  type HostResult,
  type PortResult,
  type Probe,
  type ScanResult,
  type StateCounts,
} from "./scan_result.ts";

/** Default workers for thread and process modes. */
export const DEFAULT_WORKERS = 8;
/** Default probes in flight per worker for the `connect` engine. */
export const DEFAULT_CONCURRENCY = MAX_CONNECTS_PER_ISOLATE;
/** Probes per task when the FFI engine runs in workers or children. */
export const FFI_CHUNK = 2048;

/**
 * The fastest correct mode for a scan of `probes` probes with `engine`. `ffi`:
 * `async`, one isolate keeps thousands of connects in flight and start-up is
 * cheapest. `connect`: `async` while one isolate's
 * {@linkcode MAX_CONNECTS_PER_ISOLATE} connects cover the scan, else `thread`
 * with enough workers to keep up to `maxWorkers × 128` connects in flight.
 */
export function autoMode(
  probes: number,
  maxWorkers = DEFAULT_WORKERS,
  engine: EngineName = "connect",
): { mode: Mode; workers: number } {
  if (engine === "ffi" || probes <= MAX_CONNECTS_PER_ISOLATE) return { mode: "async", workers: 1 };
  return {
    mode: "thread",
    workers: Math.min(maxWorkers, Math.ceil(probes / MAX_CONNECTS_PER_ISOLATE)),
  };
}

/** Default extra attempts for ports that did not answer (see `verdict.ts`). */
export const DEFAULT_RETRIES = 1;
/** Default connect timeout: the study's 0.5 s. */
export const DEFAULT_TIMEOUT_MS = 500;

/** What to scan and how. */
export interface ScanOptions {
  targets: ScanTarget[];
  /** Ports to scan per host (ascending unless `randomize`). */
  ports: number[];
  mode: Mode;
  /** Connect engine (default `connect`). */
  engine?: EngineName;
  workers?: number;
  concurrency?: number;
  /** Timeout before a host has answered (then adaptive within min/max RTT timeouts). */
  timeoutMs?: number;
  /** Adaptive timeout bounds (`timing.ts`); absent: the timeout is fixed. */
  minRttMs?: number;
  maxRttMs?: number;
  retries?: number;
  /** New connects per second over the whole scan (0: unlimited). */
  rate?: number;
  /** Scan the ports of each host in random order. */
  randomize?: boolean;
  /** The probes to run, in order (default: every host × port); results list only these. */
  probes?: Probe[];
  /** Module that registers the scanner's tasks (default: the main module). */
  entry?: string | URL;
  signal?: AbortSignal;
  /**
   * Called once when the scan first waits for the network, after the first wave
   * of connects is out (set up what only a waiting scan needs: signal handlers).
   * A scan that its first connects decide never calls it.
   */
  onWaiting?: () => void;
  /** Called as probes complete (at most every 1/100 of the work). */
  onProgress?: (done: number, total: number) => void;
  /** Called as each port is decided. */
  onPort?: (host: ScanTarget, port: PortResult) => void;
  /** Service names by port (default: `/etc/services`). */
  services?: Map<number, string>;
  random?: () => number;
}

/** The distinct ports of `probes` when there are at most 64, else `undefined`. */
function fewPorts(probes: readonly Probe[]): number[] | undefined {
  const ports = new Set<number>();
  for (const probe of probes) {
    ports.add(probe.port);
    if (ports.size > 64) return undefined;
  }
  return [...ports];
}

/** Every host × port in scan order (ports shuffled per host with `randomize`). */
function defaultProbes(options: ScanOptions): Probe[] {
  const random = options.random ?? Math.random;
  const probes: Probe[] = [];
  options.targets.forEach((_target, host) => {
    const order = options.randomize ? shuffled(options.ports, random) : options.ports;
    for (const port of order) probes.push({ host, port });
  });
  return probes;
}

interface Settings {
  minRttMs?: number;
  maxRttMs?: number;
  workers: number;
  concurrency: number;
  timeoutMs: number;
  retries: number;
  rate: number;
}

/** Most connects in flight per isolate under the open-file limit (`undefined`: unknown). */
async function capFor(engine: EngineName, isolates: number): Promise<number | undefined> {
  if (engine === "ffi") {
    // Raise the soft limit towards the hard one first (children inherit it), as nmap does.
    const limit = libc().openFileLimit(MAX_FFI_WINDOW * isolates + 256);
    return limit === null ? undefined : connectsPerIsolate(limit.soft, isolates);
  }
  const limit = await openFileLimit();
  return limit === null ? undefined : connectsPerIsolate(limit, isolates);
}

/** The shared runner and the scanner's registry, loaded when a scan runs tasks. */
async function tasks() {
  const [{ runTasks }, { taskOf }, { registry }] = await Promise.all([
    import(String("../shared/runner.ts")) as Promise<typeof import("../shared/runner.ts")>,
    import(String("../shared/registry.ts")) as Promise<typeof import("../shared/registry.ts")>,
    import(String("./registry.ts")) as Promise<typeof import("./registry.ts")>,
  ]);
  return { runTasks, taskOf, registry };
}

async function runConnect(
  options: ScanOptions,
  probes: Probe[],
  settings: Settings,
  record: (index: number, code: number) => void,
): Promise<void> {
  const { workers, concurrency, timeoutMs, retries, rate } = settings;
  const inFlight = Math.min(
    probes.length,
    workers * Math.min(concurrency, MAX_CONNECTS_PER_ISOLATE),
  );
  let cap: number | undefined;
  if (inFlight > 32) {
    const byLimit = await capFor("connect", workers);
    if (byLimit !== undefined) cap = Math.min(MAX_CONNECTS_PER_ISOLATE, byLimit);
  }
  const input = (i: number): ProbeInput => ({
    address: options.targets[probes[i].host].address,
    port: probes[i].port,
    timeoutMs,
    retries,
    rate,
    cap,
    minRttMs: settings.minRttMs,
    maxRttMs: settings.maxRttMs,
  });
  if (
    options.mode === "async" && probes.length <= Math.min(concurrency, MAX_CONNECTS_PER_ISOLATE)
  ) {
    // Probes that all fit in flight at once start at once: no pool to load (most of
    // the start-up of a small scan), the same probe function the task runs.
    const { probePort } =
      await (import(String("./probe.ts")) as Promise<typeof import("./probe.ts")>);
    const signal = options.signal;
    const stopped = new Promise<never>((_, reject) => {
      if (signal?.aborted) reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
    stopped.catch(() => {});
    await Promise.race([
      Promise.all(probes.map(async (_, i) => {
        const value = await probePort(input(i));
        record(i, outcomeCode(value.state, value.reason));
      })),
      stopped,
    ]);
    return;
  }
  const { runTasks, taskOf, registry } = await tasks();
  function* inputs(): Generator<ProbeInput & { i: number }> {
    for (let i = 0; i < probes.length; i++) yield { i, ...input(i) };
  }
  for await (
    const outcome of runTasks(taskOf(registry, "scanner.probe"), inputs(), {
      mode: options.mode,
      workers,
      concurrency,
      entry: options.entry,
      signal: options.signal,
      batch: 256,
    })
  ) {
    if (!outcome.ok) throw outcome.error;
    const { i } = outcome.input as ProbeInput & { i: number };
    record(i, outcomeCode(outcome.value.state, outcome.value.reason));
  }
}

/**
 * One first connect for each probe of a small scan, here: a port of a host that
 * answers at once is decided by `connect` itself (open, closed, self-connect; the
 * engine's own rules), and a one-port scan then never loads the engine's module
 * or runs its code cold. Returns the indexes still undecided (pending, an ICMP
 * error, out of descriptors): the engine probes those from the start, with the
 * whole attempt schedule.
 */
function decideAtOnce(
  probes: readonly Probe[],
  hosts: readonly { address: string; family: 4 | 6 }[],
  record: (index: number, code: number) => void,
): number[] {
  const lib = libc();
  const undecided: number[] = [];
  probes.forEach((probe, index) => {
    const { address, family } = hosts[probe.host];
    const to = sockAddr(address, probe.port, family);
    const fd = lib.tcpSocket(family);
    if (fd < 0) return undecided.push(index);
    let code = lib.connect(fd, to);
    // On loopback the answer is often in before connect returns: a second call says which.
    if (code === -Errno.EINPROGRESS) code = lib.connect(fd, to);
    const verdict = code === 0
      ? connectedVerdict(lib.isSelfConnect(fd, to))
      : verdictForErrno(-code);
    lib.close(fd);
    if (verdict?.final) record(index, verdict.code);
    else undecided.push(index);
  });
  return undecided;
}

/**
 * `later`: work the scan needs only once it waits (service names, `onWaiting`); the
 * engine runs it once its first wave of connects is out (each port's timeout runs
 * from its own connect, so nothing else should come before them).
 */
async function runFfi(
  options: ScanOptions,
  probes: Probe[],
  settings: Settings,
  record: (index: number, code: number) => void,
  later: () => void,
): Promise<void> {
  const { workers, timeoutMs, retries, rate } = settings;
  const { mode, targets } = options;
  const hosts = targets.map((t) => ({ address: t.address, family: t.family }));
  const isolates = mode === "thread" || mode === "process" ? workers : 1;
  // A scan that needs a few sockets at most does not ask for the open-file limit.
  const sockets = probes.length * (retries + 1);
  const cap = sockets <= FEW_SOCKETS ? sockets : await capFor("ffi", isolates);
  const window = Math.max(1, Math.min(settings.concurrency, cap ?? MAX_FFI_WINDOW));
  if (mode === "sequential" || mode === "async") {
    let rest = probes;
    let onResult = record;
    if (sockets <= FEW_SOCKETS && rate === 0) {
      const undecided = decideAtOnce(probes, hosts, record);
      if (undecided.length === 0) return;
      rest = undecided.map((index) => probes[index]);
      onResult = (index, code) => record(undecided[index], code);
    }
    const { FfiEngine, ffiEngine } =
      await (import(String("./ffi_engine.ts")) as Promise<typeof import("./ffi_engine.ts")>);
    const engine = mode === "sequential" ? new FfiEngine(1) : ffiEngine(window);
    engine.setRate(rate);
    await engine.scan(
      { hosts, hostOf: rest.map((p) => p.host), ports: rest.map((p) => p.port) },
      {
        timeoutMs,
        retries,
        minRttMs: settings.minRttMs,
        maxRttMs: settings.maxRttMs,
        signal: options.signal,
        onResult,
        onIdle: later,
      },
    );
    return;
  }
  later();
  const [{ runTasks, taskOf, registry }, { decodeCodes }] = await Promise.all([
    tasks(),
    import(String("./ffi_chunk.ts")) as Promise<typeof import("./ffi_chunk.ts")>,
  ]);
  function* chunks(): Generator<FfiChunkInput & { first: number }> {
    for (let first = 0; first < probes.length; first += FFI_CHUNK) {
      const slice = probes.slice(first, first + FFI_CHUNK);
      yield {
        first,
        hosts,
        hostOf: slice.map((p) => p.host),
        ports: slice.map((p) => p.port),
        timeoutMs,
        retries,
        rate,
        window,
        minRttMs: settings.minRttMs,
        maxRttMs: settings.maxRttMs,
      };
    }
  }
  for await (
    const outcome of runTasks(taskOf(registry, "scanner.ffiChunk"), chunks(), {
      mode,
      workers,
      // Enough chunks queued per worker to keep its window full.
      concurrency: Math.max(2, Math.ceil(window / FFI_CHUNK) + 1),
      entry: options.entry,
      signal: options.signal,
      batch: 1,
    })
  ) {
    if (!outcome.ok) throw outcome.error;
    const { first } = outcome.input as FfiChunkInput & { first: number };
    decodeCodes(outcome.value).forEach((code, i) => record(first + i, code));
  }
}

/**
 * Scans every port of every target (or the given probes). Results are exact in
 * every mode and engine: a probe that fails for a reason that is no port state
 * fails the scan with a message naming the host and port, rather than being
 * dropped or guessed.
 */
export async function scan(options: ScanOptions): Promise<ScanResult> {
  const started = performance.now();
  const { targets, mode } = options;
  const engine = options.engine ?? "connect";
  const workers = mode === "thread" || mode === "process"
    ? Math.max(1, options.workers ?? DEFAULT_WORKERS)
    : 1;
  const concurrency = mode === "sequential"
    ? 1
    : Math.max(1, options.concurrency ?? (engine === "ffi" ? MAX_FFI_WINDOW : DEFAULT_CONCURRENCY));
  const settings: Settings = {
    minRttMs: options.minRttMs,
    maxRttMs: options.maxRttMs,
    workers,
    concurrency,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    retries: options.retries ?? DEFAULT_RETRIES,
    rate: (options.rate ?? 0) > 0 ? options.rate! / workers : 0,
  };
  const probes = options.probes ?? defaultProbes(options);
  const total = probes.length;
  const codes = new Uint8Array(total);
  let services = options.services;
  // A scan of a few ports looks up only their names (see `parseServices`).
  const names = () => (services ??= loadServices(undefined, fewPorts(probes)));
  const portOf = (index: number): PortResult =>
    portResult(probes[index].port, codes[index], names());
  let done = 0;
  const step = Math.max(1, Math.floor(total / 100));
  let finished = false;
  const record = (index: number, code: number) => {
    // Nothing counts after an interrupted scan returned (its last probes may still answer).
    if (finished || codes[index] !== 0) return;
    codes[index] = code;
    done++;
    if (options.onPort) options.onPort(targets[probes[index].host], portOf(index));
    if (options.onProgress && (done % step === 0 || done === total)) {
      options.onProgress(done, total);
    }
  };
  let interrupted = false;
  try {
    if (engine === "ffi") {
      // The service names load while the engine waits for answers (see `runFfi`).
      await runFfi(options, probes, settings, record, () => {
        options.onWaiting?.();
        names();
      });
    } else {
      options.onWaiting?.();
      const running = runConnect(options, probes, settings, record);
      // The service names load while the engine's module loads (not before it).
      names();
      await running;
    }
  } catch (error) {
    if (!options.signal?.aborted) throw error;
    interrupted = true;
  }
  finished = true;

  const hosts = hostResults(targets, probes, codes, names(), interrupted);
  return {
    hosts,
    portsPerHost: options.ports.length,
    probes: total,
    mode,
    engine,
    workers,
    concurrency,
    timeoutMs: settings.timeoutMs,
    retries: settings.retries,
    elapsedMs: performance.now() - started,
    interrupted,
  };
}
