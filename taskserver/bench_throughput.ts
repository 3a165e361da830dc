/**
 * `taskserver bench`'s no-delay throughput measurements, taken with the
 * `taskserver load` generator: persistent clients per server design, the
 * generator's own ceiling (pipelined), and each server's CPU time per answer
 * (from /proc). Their table and ratio lines are in `study_report.ts`.
 *
 * @module
 */
import { readPressure } from "../shared/pressure.ts";
import { processTreeStatLines } from "../shared/proc.ts";
import { launch, type ServerSpec } from "./bench_servers.ts";
import { throughput, type ThroughputRun } from "./load_bench.ts";

/** Options of the throughput measurements. */
export interface ThroughputOptions {
  /** Entry of `taskserver serve` (default: the running program). */
  entry?: string;
  /** One progress line per run. */
  onProgress?: (line: string) => void;
  /** Generator workers (0: this isolate). */
  generatorWorkers?: number;
  /** Stops the measurements; a run cut short is left out. */
  signal?: AbortSignal;
}

/** Measures throughput for each server and client count. */
export async function throughputTable(
  specs: ServerSpec[],
  clients: number[],
  durationMs: number,
  options: ThroughputOptions,
): Promise<ThroughputRun[]> {
  const runs: ThroughputRun[] = [];
  for (const spec of specs) {
    if (options.signal?.aborted) break;
    const server = await launch(spec, 0, options.entry);
    try {
      for (const n of clients) {
        const cpuBefore = processTreeCpuMs(server.pid);
        const run = await throughput(spec.label, server.port, n, durationMs, {
          workers: options.generatorWorkers ?? 0,
          signal: options.signal,
        });
        // A run cut short by a stop signal measured less than its duration: left out.
        if (options.signal?.aborted) break;
        run.serverCpuUs = serverCpuPerAnswer(cpuBefore, processTreeCpuMs(server.pid), run);
        options.onProgress?.(
          `${spec.label.padEnd(20)} ${String(n).padStart(6)} clients: ${run.rps} req/s, ` +
            `p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, errors ${run.errors}`,
        );
        runs.push(run);
      }
    } finally {
      await server.stop();
    }
  }
  return runs;
}

/** Connections and requests in flight per connection of the generator-ceiling run. */
export const CEILING_CONNECTIONS = 16;
/** Requests in flight per connection in the generator-ceiling run. */
export const CEILING_PIPELINE = 128;

/**
 * The generator's own ceiling: our async server without delay, 16 connections
 * with 128 requests in flight each (the protocol answers pipelined lines in
 * order), so the figure is the generator's and the server's, not the round trip's.
 */
export async function generatorCeiling(
  durationMs: number,
  options: ThroughputOptions,
): Promise<ThroughputRun | null> {
  if (options.signal?.aborted) return null;
  const server = await launch(
    { label: "async", kind: "taskserver", mode: "async" },
    0,
    options.entry,
  );
  try {
    const cpuBefore = processTreeCpuMs(server.pid);
    const run = await throughput(
      "async, pipelined (generator ceiling)",
      server.port,
      CEILING_CONNECTIONS,
      durationMs,
      {
        workers: options.generatorWorkers ?? 0,
        pipeline: CEILING_PIPELINE,
        signal: options.signal,
      },
    );
    if (options.signal?.aborted) return null;
    run.serverCpuUs = serverCpuPerAnswer(cpuBefore, processTreeCpuMs(server.pid), run);
    options.onProgress?.(
      `generator ceiling: ${run.rps} req/s, p99 ${run.p99Ms} ms, errors ${run.errors}`,
    );
    return run;
  } finally {
    await server.stop();
  }
}

/** Clock ticks per second of /proc/PID/stat times (USER_HZ: 100 on Linux). */
const CLOCK_TICKS = 100;

/**
 * CPU time (user + system, ms) of a process and its live children, from /proc;
 * null where there is no /proc. A thread-per-client server and a single event
 * loop get different CPU shares on a busy machine, so CPU per answer is the
 * figure that compares their code.
 */
export function processTreeCpuMs(pid: number): number | null {
  const cpuOf = (stat: string) => {
    // Fields after the command name (which may hold spaces) in parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  };
  const lines = processTreeStatLines(pid);
  if (lines === null || lines.length === 0) return null;
  const ticks = lines.reduce((sum, line) => sum + cpuOf(line).ticks, 0);
  return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS : null;
}

function serverCpuPerAnswer(
  beforeMs: number | null,
  afterMs: number | null,
  run: ThroughputRun,
): number | null {
  if (beforeMs === null || afterMs === null || run.requests === 0) return null;
  // The run includes a 200 ms warmup whose answers are not counted: per answer
  // it is a slight over-estimate, the same for every server.
  return Math.round((((afterMs - beforeMs) * 1000) / run.requests) * 10) / 10;
}

/** `/proc/pressure/cpu` avg10 for a table title. */
export function cpuPressure(): string {
  const p = readPressure();
  return p ? `${p.avg10}% (some, avg10)` : "unknown";
}
