/**
 * Pure reports of `taskserver bench`: the seed study's report from its raw
 * measurements ({@linkcode report}, the `report` of the study in `study.ts`),
 * and the free-form bench's tables, plot and ratio lines
 * ({@linkcode benchReport}). Numbers in, tables and sentences out; nothing is
 * measured or printed here, so tests feed synthetic numbers and assert the exact
 * report.
 *
 * @module
 */
import { type LinePlot, renderTable, type Report, type ReportTable } from "../shared/report.ts";
import type { StudyFindings } from "../shared/study_harness.ts";
import type { DelayRun, ThroughputRun } from "./load_bench.ts";
import {
  MEASURED_COLUMNS,
  PUBLISHED,
  PYTHON_MAX_CLIENTS,
  STUDY_SERVERS,
  type StudyPlan,
} from "./study_plans.ts";

/** A delay-table cell: a server, where its clients came from, and the run. */
export interface DelayCell {
  server: string;
  clientsFrom: "in-process" | "processes";
  run: DelayRun;
}

/** What the study measures (`bench.ts` measureStudy), before any table. */
export interface StudyRaw {
  /** The main table: the study's designs and ours, at the plan's client counts. */
  main: DelayCell[];
  /** Main-table runs not made, each with its reason. */
  mainSkipped: string[];
  /** The study's Python servers at the same counts; null when python3 is missing. */
  python: DelayCell[] | null;
  /** The many-clients table (async, the pools, Python's thread server up to its limit). */
  big: DelayCell[];
  /** True when some big client counts were above what the Python servers run. */
  bigPythonSkipped: boolean;
  /** Clients as processes (start.sh), async server. */
  processes: DelayCell[];
  /** No-delay throughput of our designs and Python's thread server. */
  throughput: ThroughputRun[];
  /** True when the run was stopped (SIGINT/SIGTERM) before its end. */
  interrupted?: boolean;
}

/** A table of total times: a row per client count, a column per server. */
export function pivot(
  cells: DelayCell[],
  servers: string[],
  clients: number[],
  title: string,
): ReportTable {
  const at = (server: string, n: number) =>
    cells.find((c) => c.server === server && c.run.clients === n)?.run;
  return {
    title,
    columns: ["Clients", ...servers.map((s) => `${s} (s)`)],
    rows: clients.map((n) => [
      n,
      ...servers.map((s) => {
        const run = at(s, n);
        return run ? Number(run.totalS.toFixed(3)) : null;
      }),
    ]),
  };
}

/** Clients against total time, a series per server. */
export function delayPlot(cells: DelayCell[], title: string): LinePlot {
  return {
    title,
    xLabel: "Concurrent clients",
    yLabel: "Total execution time (s)",
    points: cells.map((c) => ({ x: c.run.clients, y: c.run.totalS, series: c.server })),
  };
}

/** The throughput table (a row per server and client count). */
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
    rows: runs.map((r) => [
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

/** Our best design against the Python thread server at one client count. */
export interface PythonRatio {
  clients: number;
  best: string;
  ratio: number;
  text: string;
}

/** For each client count: our best design's requests/s over the Python thread server's. */
export function pythonRatios(runs: ThroughputRun[]): PythonRatio[] {
  const out: PythonRatio[] = [];
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

/** `1.006`, or `1.006–1.008` for a range. */
function span(values: number[]): string {
  const lo = fmt(Math.min(...values), 3), hi = fmt(Math.max(...values), 3);
  return lo === hi ? lo : `${lo}–${hi}`;
}

function fmt(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

const PUBLISHED_PLOT: LinePlot = {
  title: "Published: clients against total time (3 s delay)",
  xLabel: "Concurrent clients",
  yLabel: "Total execution time (s)",
  points: PUBLISHED.rows.flatMap((row) =>
    [1, 2, 3].map((i) => ({
      x: row[0] as number,
      y: row[i] as number,
      series: PUBLISHED.columns[i].replace(" (s)", ""),
    }))
  ),
};

/**
 * The study's report from its raw numbers: the measured table in the published
 * table's shape, the extra tables, plots, findings written from the numbers,
 * and what was skipped and why.
 */
export function report(raw: StudyRaw, plan: StudyPlan): StudyFindings {
  const measured = pivot(
    raw.main,
    STUDY_SERVERS.map((s) => s.label),
    plan.clients,
    `Measured: total execution time (s), ${plan.delayMs} ms delay, in-process clients`,
  );
  measured.columns = [...MEASURED_COLUMNS];
  const extra: ReportTable[] = [];
  const skipped: string[] = [];
  if (raw.interrupted) skipped.push("the rest: the run was interrupted");
  if (raw.python === null) skipped.push("Python baselines: python3 is not available");
  skipped.push(...raw.mainSkipped);
  if (raw.python !== null) {
    extra.push(
      pivot(
        raw.python,
        ["python fork", "python thread"],
        plan.clients,
        `The study's Python servers here: total execution time (s), ${plan.delayMs} ms delay`,
      ),
    );
  }
  if (plan.bigClients.length > 0) {
    if (raw.bigPythonSkipped) {
      skipped.push(
        `the Python servers above ${PYTHON_MAX_CLIENTS} clients (see PYTHON_MAX_CLIENTS)`,
      );
    }
    extra.push({
      title: `Many clients: ${plan.delayMs} ms delay, in-process clients`,
      columns: ["Server", "Clients", "Total (s)", "Total / delay", "Errors"],
      rows: raw.big.map((c) => [
        c.server,
        c.run.clients,
        Number(c.run.totalS.toFixed(3)),
        Number((c.run.totalS * 1000 / plan.delayMs).toFixed(3)),
        c.run.errors,
      ]),
    });
  } else skipped.push(`many clients (1,000 and 10,000): not at this scale`);
  if (plan.processClients.length > 0) {
    extra.push({
      title:
        `Clients as processes (start.sh style, taskserver call), async server, ${plan.delayMs} ms delay`,
      columns: ["Clients", "Total (s)", "Average per client (s)", "Errors"],
      rows: raw.processes.map((c) => [
        c.run.clients,
        Number(c.run.totalS.toFixed(3)),
        Number(c.run.averageS.toFixed(3)),
        c.run.errors,
      ]),
    });
  } else {skipped.push(
      "clients as processes (start.sh): not at this scale, in-process clients only",
    );}
  extra.push(
    throughputReportTable(
      raw.throughput,
      `Throughput without delay, ${plan.durationMs} ms per run`,
    ),
  );
  if (plan.delayMs !== 3000) {
    skipped.push(
      `delay ${plan.delayMs} ms instead of the study's 3000 ms at this scale (compare total/delay)`,
    );
  }
  skipped.push(
    "clients come from this process (the study's start.sh started Python processes); " +
      "start.sh with `taskserver call` runs in the process-client table where the scale has one",
  );
  return {
    measured,
    extra,
    plots: [
      delayPlot(raw.main, `Clients against total time (${plan.delayMs} ms delay)`),
      PUBLISHED_PLOT,
    ],
    findings: findings(raw, plan),
    skipped,
    options: {
      ...plan,
      sequentialMaxMs: Number.isFinite(plan.sequentialMaxMs) ? plan.sequentialMaxMs : null,
    },
  };
}

/** Sentences from the numbers: where this machine agrees with the study, and beyond it. */
function findings(raw: StudyRaw, plan: StudyPlan): string[] {
  const out: string[] = [];
  const at = (server: string, n: number) =>
    raw.main.find((c) => c.server === server && c.run.clients === n)?.run;
  const nMax = plan.clients[plan.clients.length - 1];
  const delayS = plan.delayMs / 1000;
  const seq = raw.main.filter((c) => c.server === "sequential");
  if (seq.length > 0) {
    const ratio = seq.map((c) => c.run.totalS / (c.run.clients * delayS));
    out.push(
      `Agrees with the study: the sequential server's total is N × delay ` +
        `(measured ${span(ratio)} × N × ${delayS} s; ` +
        `the study: 1.001 × N × 3 s), because each client waits for every client before it.`,
    );
  }
  const concurrent = STUDY_SERVERS.map((s) => s.label).filter((s) => s !== "sequential");
  const overheads = concurrent.map((s) => ({ s, run: at(s, nMax) })).filter((x) => x.run);
  if (overheads.length > 0) {
    const parts = overheads.map((x) => `${x.s} ${fmt(x.run!.totalS / delayS, 3)}`);
    const perClient = overheads.filter((x) => x.s.includes("per client"));
    const worst = perClient.length > 0
      ? perClient.reduce((a, b) => (a.run!.totalS > b.run!.totalS ? a : b))
      : undefined;
    out.push(
      `With ${nMax} concurrent clients the concurrent designs finish in about one delay, as in the ` +
        `study (its 100-client runs took 1.07–1.08 × 3 s); here total/delay is ${
          parts.join(", ")
        }` +
        (worst
          ? `; the worker-per-client designs pay for starting an isolate per client on 2 cores ` +
            `(${worst.s}: ${
              fmt((worst.run!.totalS - delayS) * 1000 / nMax, 1)
            } ms per client above the delay), ` +
            `which the pools and async avoid.`
          : "."),
    );
  }
  const lastN = plan.throughputClients[plan.throughputClients.length - 1];
  const tpAt = (server: string) =>
    raw.throughput.find((r) => r.server === server && r.clients === lastN);
  const py = tpAt("python thread");
  const ours = ["async", "process pool"].map(tpAt).filter((r) => r !== undefined);
  if (py && py.rps > 0 && ours.length > 0) {
    const best = ours.reduce((a, b) => (a.rps >= b.rps ? a : b));
    out.push(
      `Beyond the study: without delay, ${lastN} persistent clients got ` +
        ours.map((r) => `${r.rps} requests/s from ${r.server}`).join(" and ") +
        ` against ${py.rps} from the Python thread-per-client server (best ${
          fmt(best.rps / py.rps, 2)
        }×, same in-process load generator on the same 2 cores, so the generator bounds every figure).`,
    );
  } else if (raw.big.length > 0) {
    const a = raw.big.find((c) => c.server === "async");
    if (a) {
      out.push(
        `Beyond the study: ${a.run.clients} in-process clients against the async server took ` +
          `${fmt(a.run.totalS, 3)} s with ${a.run.errors} errors.`,
      );
    }
  }
  if (raw.python !== null && raw.python.length > 0 && out.length < 3) {
    const pf = raw.python.find((c) => c.server === "python fork" && c.run.clients === nMax);
    if (pf) {
      out.push(
        `The study's own Python fork server took ${
          fmt(pf.run.totalS, 3)
        } s for ${nMax} clients here.`,
      );
    }
  }
  return out;
}

/** What the free-form bench measured (`bench.ts` measureBench). */
export interface BenchRaw {
  delay: DelayCell[];
  /** Runs not made, each with its reason. */
  skipped: string[];
  throughput: ThroughputRun[];
  /** /proc/pressure/cpu when the throughput runs ended (for the table title). */
  pressure: string;
  /** True when the run was stopped (SIGINT/SIGTERM) before its end. */
  interrupted: boolean;
}

/** The free-form bench's settings that its report names. */
export interface BenchReportSettings {
  clients: number[];
  delayMs: number;
  inProcess: boolean;
  durationMs: number;
  generatorWorkers?: number;
}

/** The free-form bench's text, `--out` report (with `json` as its JSON file) and ratio lines. */
export function benchReport(
  raw: BenchRaw,
  settings: BenchReportSettings,
  json: unknown,
): { text: string; report: Report; ratios: PythonRatio[] } {
  const servers = [...new Set(raw.delay.map((c) => c.server))];
  const tables = [
    pivot(
      raw.delay,
      servers,
      settings.clients,
      `Total execution time, --delay ${settings.delayMs} ms, clients ${
        settings.inProcess ? "in-process" : "as processes (start.sh)"
      }`,
    ),
    throughputReportTable(
      raw.throughput,
      `Throughput without delay, ${settings.durationMs} ms per run, clients from the ` +
        `load generator (${
          settings.generatorWorkers ?? 0
        } workers), /proc/pressure/cpu ${raw.pressure}`,
    ),
  ];
  const plots = [
    delayPlot(raw.delay, `Clients against total time (--delay ${settings.delayMs} ms)`),
  ];
  const ratios = pythonRatios(raw.throughput);
  const stopped = raw.interrupted ? ["Interrupted: what was measured before the stop."] : [];
  const engines = delayEngines(raw.delay);
  const lines = [
    tables.map(renderTable).join("\n\n"),
    ...engines,
    ...ratios.map((r) => r.text),
    ...stopped,
  ];
  return {
    text: lines.join("\n"),
    report: {
      name: "taskserver-bench",
      title: "taskserver bench",
      notes: [...stopped, ...raw.skipped, ...engines, ...ratios.map((r) => r.text)],
      tables,
      plots,
      json,
    },
    ratios,
  };
}

/**
 * One line naming the engines behind the delay table (`ffi`: libc sockets and
 * epoll; `deno`: Deno.Conn), for each server: its own and the generator's.
 */
export function delayEngines(cells: readonly DelayCell[]): string[] {
  const seen = new Map<string, string>();
  for (const { server, run } of cells) {
    if (run.server === undefined && run.generator === undefined) continue;
    const parts = [
      run.server === undefined ? null : `server ${run.server}`,
      run.generator === undefined ? null : `generator ${run.generator}`,
    ].filter((p) => p !== null);
    const text = `${server} (${parts.join(", ")})`;
    if (!seen.has(text)) seen.set(text, text);
  }
  return seen.size === 0 ? [] : [`Engines of the delay table: ${[...seen.values()].join("; ")}`];
}
