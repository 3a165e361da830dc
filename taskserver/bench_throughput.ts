/**
 * `taskserver bench`'s no-delay throughput tables, measured with the
 * `taskserver load` generator: persistent clients per server design, the
 * generator's own ceiling (pipelined), each server's CPU time per answer (from
 * /proc) and our best design's ratio to the Python thread-per-client server.
 *
 * @module
 */
import type { ReportTable } from "../shared/report.ts";
import { readPressure } from "../shared/pressure.ts";
import { processTreeStatLines } from "../shared/proc.ts";
import { launch, type ServerSpec } from "./bench_servers.ts";
import { throughput, type ThroughputRun } from "./load_bench.ts";

/** Measures throughput for each server and client count. */
export async function throughputTable(
  specs: ServerSpec[],
  clients: number[],
  durationMs: number,
  options: { entry?: string; onLog?: (line: string) => void; generatorWorkers?: number },
): Promise<ThroughputRun[]> {
  const runs: ThroughputRun[] = [];
  for (const spec of specs) {
    const server = await launch(spec, 0, options.entry);
    try {
      for (const n of clients) {
        const cpuBefore = processTreeCpuMs(server.pid);
        const run = await throughput(spec.label, server.port, n, durationMs, {
          workers: options.generatorWorkers ?? 0,
        });
        run.serverCpuUs = serverCpuPerAnswer(cpuBefore, processTreeCpuMs(server.pid), run);
        options.onLog?.(
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
  options: { entry?: string; onLog?: (line: string) => void; generatorWorkers?: number },
): Promise<ThroughputRun> {
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
      { workers: options.generatorWorkers ?? 0, pipeline: CEILING_PIPELINE },
    );
    run.serverCpuUs = serverCpuPerAnswer(cpuBefore, processTreeCpuMs(server.pid), run);
    options.onLog?.(
      `generator ceiling: ${run.rps} req/s, p99 ${run.p99Ms} ms, errors ${run.errors}`,
    );
    return run;
  } finally {
    await server.stop();
  }
}

export function throughputReportTable(runs: ThroughputRun[], title: string): ReportTable {
  return {
    title,
    columns: [
      "Server",
      "Clients",
      "Pipeline",
      "Requests/s",
      "p50 (ms)",
      "p99 (ms)",
      "p99.9 (ms)",
      "max (ms)",
      "Errors",
      "Server CPU/answer (µs)",
    ],
    rows: runs.map((
      r,
    ) => [
      r.server,
      r.clients,
      r.pipeline,
      r.rps,
      r.p50Ms,
      r.p99Ms,
      r.p999Ms,
      r.maxMs,
      r.errors,
      r.serverCpuUs,
    ]),
  };
}

/** For each client count: our best design's requests/s over the Python thread server's. */
export function pythonRatios(
  runs: ThroughputRun[],
): { clients: number; best: string; ratio: number; text: string }[] {
  const out: { clients: number; best: string; ratio: number; text: string }[] = [];
  for (const n of [...new Set(runs.map((r) => r.clients))]) {
    const python = runs.find((r) => r.clients === n && r.server === "python thread");
    const ours = runs.filter((r) =>
      r.clients === n && r.server !== "python thread" && r.pipeline === 1
    );
    if (!python || ours.length === 0 || python.rps === 0) continue;
    const best = ours.reduce((a, b) => (b.rps > a.rps ? b : a));
    const ratio = Math.round((best.rps / python.rps) * 100) / 100;
    const cpu = best.serverCpuUs && python.serverCpuUs
      ? `; server CPU per answer ${best.serverCpuUs} against ${python.serverCpuUs} µs (${
        Math.round((python.serverCpuUs / best.serverCpuUs) * 100) / 100
      }× Python's efficiency)`
      : "";
    out.push({
      clients: n,
      best: best.server,
      ratio,
      text: `${n} clients: best of ours (${best.server}) answered ${ratio}× the Python thread ` +
        `server's requests/s (same run, same generator)${cpu}`,
    });
  }
  return out;
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
