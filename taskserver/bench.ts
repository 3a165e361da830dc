/**
 * `taskserver bench`: the study's concurrent-clients table (N clients against a
 * server that answers after `--delay`), bigger N, and a no-delay throughput run
 * in the style of wrk, against the Python servers of the study as baselines.
 *
 * Every server runs as its own process (`taskserver serve`, or python3), so the
 * load generator in this process never shares an event loop with it.
 *
 * @module
 */
import {
  type LinePlot,
  renderTable,
  type ReportTable,
  writeReport,
  writeStudyReport,
} from "../shared/report.ts";
import { selfCommand } from "../shared/peer.ts";
import type { StudyReport, StudyScale } from "../shared/study.ts";
import type { Mode } from "../shared/mode.ts";
import {
  BENCH_PAYLOAD,
  BENCH_REPLY,
  type DelayRun,
  inProcessClients,
  type ThroughputRun,
} from "./load_bench.ts";
import {
  defaultEntry,
  havePython,
  launch,
  PYTHON_MAX_CLIENTS,
  type ServerSpec,
} from "./bench_servers.ts";
import {
  cpuPressure,
  generatorCeiling,
  pythonRatios,
  throughputReportTable,
  throughputTable,
} from "./bench_throughput.ts";

export { BENCH_PAYLOAD, type DelayRun, type ThroughputRun };
export {
  defaultEntry,
  havePython,
  launch,
  type LaunchedServer,
  PYTHON_MAX_CLIENTS,
  type ServerSpec,
} from "./bench_servers.ts";
export { launchPythonServer, launchTaskServer, PYTHON_SERVER } from "./bench_servers.ts";
export {
  generatorCeiling,
  processTreeCpuMs,
  pythonRatios,
  throughputTable,
} from "./bench_throughput.ts";

/** The repository's `start.sh` (next to `taskserver/` and `dist/`), if it is there. */
export function startScript(entry = defaultEntry()): string | null {
  try {
    const path = new URL("../start.sh", entry.startsWith("file:") ? entry : `file://${entry}`)
      .pathname;
    return Deno.statSync(path).isFile ? path : null;
  } catch {
    return null;
  }
}

/** Parses what `start.sh` prints: total, average per script, and failures. */
export function parseStartSh(text: string, clients: number): DelayRun {
  const number = (pattern: RegExp) => {
    const match = pattern.exec(text);
    if (!match) throw new Error(`start.sh printed no ${pattern.source.split(":")[0]}`);
    return Number(match[1]);
  };
  return {
    clients,
    totalS: number(/Total Execution Time: ([\d.]+) seconds/),
    averageS: number(/Average Execution Time per script: ([\d.]+) seconds/),
    errors: number(/Failed: (\d+) of/),
  };
}

async function viaStartSh(script: string, clients: number, argv: string[]): Promise<DelayRun> {
  const out = await new Deno.Command("bash", {
    args: [script, String(clients), ...argv],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return parseStartSh(new TextDecoder().decode(out.stdout), clients);
}

/**
 * N client processes at once, through the repository's `start.sh` as in the
 * study (or started directly when it is not there): each is
 * `taskserver call reverse BenchmarkTestString123` (or python3 with the study's client).
 */
export async function processClients(
  port: number,
  clients: number,
  studyFraming: boolean,
  entry = defaultEntry(),
): Promise<DelayRun> {
  const command = studyFraming
    ? {
      command: "python3",
      args: [
        "-c",
        "import socket,sys\ns=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n" +
        `s.sendall(b'${BENCH_PAYLOAD}')\nr=s.recv(1024).decode()\nprint('Received:',r)\n` +
        `sys.exit(0 if r=='${BENCH_REPLY}' else 1)`,
        String(port),
      ],
    }
    : selfCommand(["call", "reverse", BENCH_PAYLOAD, `--port=${port}`, "--timeout=120000"], {
      entry,
    });
  const script = startScript(entry);
  if (script) return await viaStartSh(script, clients, [command.command, ...command.args]);
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: clients }, async () => {
      const t = performance.now();
      const out = await new Deno.Command(command.command, {
        args: command.args,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).output();
      return { ms: performance.now() - t, ok: out.success };
    }),
  );
  return {
    clients,
    totalS: (performance.now() - started) / 1000,
    averageS: results.reduce((s, r) => s + r.ms, 0) / clients / 1000,
    errors: results.filter((r) => !r.ok).length,
  };
}

/** The server designs the table compares. */
export function serverSpecs(
  modes: readonly Mode[],
  perClient: boolean,
  workers: number,
): ServerSpec[] {
  const specs: ServerSpec[] = [];
  for (const mode of modes) {
    if (mode === "sequential") specs.push({ label: "sequential", kind: "taskserver", mode });
    else if (mode === "async") specs.push({ label: "async", kind: "taskserver", mode });
    else {
      if (perClient) {
        specs.push({ label: `${mode} per client`, kind: "taskserver", mode, perClient: true });
      }
      specs.push({ label: `${mode} pool`, kind: "taskserver", mode, workers });
    }
  }
  return specs;
}

/** Options of the free-form `bench` (without `--study`). */
export interface BenchOptions {
  modes: Mode[];
  clients: number[];
  delayMs: number;
  workers: number;
  perClient: boolean;
  inProcess: boolean;
  throughput: number[];
  durationMs: number;
  python: boolean;
  /** Generator workers for the throughput runs (0: the bench's own isolate). */
  generatorWorkers?: number;
  out?: string;
  entry?: string;
  onLog?: (line: string) => void;
}

/** A delay-table cell. */
export interface DelayCell {
  server: string;
  clientsFrom: "in-process" | "processes";
  run: DelayRun;
}

/** Measures the delay table for the given servers and client counts. */
export async function delayTable(
  specs: ServerSpec[],
  clients: number[],
  delayMs: number,
  options: {
    inProcess: boolean;
    entry?: string;
    onLog?: (line: string) => void;
    /** Skip sequential runs longer than this (its total is N × delay by design). */
    sequentialMaxMs?: number;
  },
): Promise<{ cells: DelayCell[]; skipped: string[] }> {
  const cells: DelayCell[] = [];
  const skipped: string[] = [];
  for (const spec of specs) {
    const server = await launch(spec, delayMs, options.entry);
    try {
      for (const n of clients) {
        const sequentialLike = spec.mode === "sequential";
        if (
          sequentialLike && options.sequentialMaxMs !== undefined &&
          n * delayMs > options.sequentialMaxMs
        ) {
          skipped.push(
            `${spec.label} with ${n} clients: would take ${(n * delayMs / 1000).toFixed(0)} s ` +
              `(N × delay by design)`,
          );
          continue;
        }
        const study = spec.kind === "python" && spec.framing === "study";
        // Sequential answers one client per delay; the others answer within one delay.
        const timeoutMs = (sequentialLike ? n * delayMs : delayMs) + 60_000;
        const run = options.inProcess
          ? await inProcessClients(server.port, n, study, timeoutMs)
          : await processClients(server.port, n, study, options.entry);
        options.onLog?.(
          `${spec.label.padEnd(20)} ${String(n).padStart(6)} clients: total ${
            run.totalS.toFixed(3)
          } s, average ${run.averageS.toFixed(3)} s, errors ${run.errors}`,
        );
        cells.push({
          server: spec.label,
          clientsFrom: options.inProcess ? "in-process" : "processes",
          run,
        });
      }
    } finally {
      await server.stop();
    }
  }
  return { cells, skipped };
}

function pivot(
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

function delayPlot(cells: DelayCell[], title: string): LinePlot {
  return {
    title,
    xLabel: "Concurrent clients",
    yLabel: "Total execution time (s)",
    points: cells.map((c) => ({ x: c.run.clients, y: c.run.totalS, series: c.server })),
  };
}

/** Runs the free-form benchmark; returns the text and the JSON result. */
export async function runBench(options: BenchOptions): Promise<{ text: string; json: unknown }> {
  const specs = serverSpecs(options.modes, options.perClient, options.workers);
  const pythonOk = options.python && (await havePython());
  const delaySpecs = [...specs];
  if (pythonOk) {
    delaySpecs.push(
      { label: "python fork", kind: "python", python: "fork", framing: "study" },
      { label: "python thread", kind: "python", python: "thread", framing: "study" },
    );
  }
  const delay = options.clients.length > 0
    ? await delayTable(specs, options.clients, options.delayMs, options)
    : { cells: [], skipped: [] };
  const pythonClients = options.clients.filter((n) => n <= PYTHON_MAX_CLIENTS);
  if (pythonOk && pythonClients.length > 0) {
    const py = await delayTable(delaySpecs.slice(specs.length), pythonClients, options.delayMs, {
      ...options,
      sequentialMaxMs: undefined,
    });
    delay.cells.push(...py.cells);
  }
  if (pythonOk && pythonClients.length < options.clients.length) {
    delay.skipped.push(`the Python servers above ${PYTHON_MAX_CLIENTS} clients`);
  }
  const throughputSpecs = specs.filter((s) => s.mode !== "sequential" && !s.perClient);
  if (pythonOk) throughputSpecs.push({ label: "python thread", kind: "python", python: "thread" });
  const runs = options.throughput.length > 0
    ? await throughputTable(throughputSpecs, options.throughput, options.durationMs, options)
    : [];
  if (options.throughput.length > 0) runs.push(await generatorCeiling(options.durationMs, options));
  const servers = [...new Set(delay.cells.map((c) => c.server))];
  const tables = [
    pivot(
      delay.cells,
      servers,
      options.clients,
      `Total execution time, --delay ${options.delayMs} ms, clients ${
        options.inProcess ? "in-process" : "as processes (start.sh)"
      }`,
    ),
    throughputReportTable(
      runs,
      `Throughput without delay, ${options.durationMs} ms per run, clients from the ` +
        `load generator (${
          options.generatorWorkers ?? 0
        } workers), /proc/pressure/cpu ${cpuPressure()}`,
    ),
  ];
  const plots = [
    delayPlot(delay.cells, `Clients against total time (--delay ${options.delayMs} ms)`),
  ];
  const ratios = pythonRatios(runs);
  const json = {
    options: { ...options, onLog: undefined },
    delay: delay.cells,
    throughput: runs,
    ratios,
  };
  if (options.out) {
    await writeReport(options.out, {
      name: "taskserver-bench",
      title: "taskserver bench",
      notes: [...delay.skipped, ...ratios.map((r) => r.text)],
      tables,
      plots,
      json,
    });
  }
  const text = tables.map(renderTable).join("\n\n");
  return {
    text: ratios.length > 0 ? `${text}\n${ratios.map((r) => r.text).join("\n")}` : text,
    json,
  };
}

/** The study's published table (seed 003), total execution time in seconds. */
export const PUBLISHED: ReportTable = {
  title: "Published: total execution time (s), 3 s delay, clients from start.sh",
  columns: ["Clients", "Single-Process (s)", "Multi-Process (s)", "Multi-Threaded (s)"],
  rows: [
    [10, 30.023681, 3.027398, 3.032718],
    [20, 60.036497, 3.055609, 3.044437],
    [30, 90.053178, 3.078539, 3.067425],
    [40, 120.071838, 3.078338, 3.088482],
    [50, 150.070198, 3.121362, 3.106144],
    [60, 180.100327, 3.106676, 3.142782],
    [70, 210.093805, 3.190848, 3.148112],
    [80, 240.123101, 3.164202, 3.212299],
    [90, 270.166767, 3.220507, 3.189932],
    [100, 300.163465, 3.229689, 3.202745],
  ],
};

interface StudyPlan {
  delayMs: number;
  clients: number[];
  sequentialMaxMs: number;
  bigClients: number[];
  throughputClients: number[];
  durationMs: number;
  processClients: number[];
}

const PLANS: Record<StudyScale, StudyPlan> = {
  smoke: {
    delayMs: 200,
    clients: [5, 10],
    sequentialMaxMs: 4000,
    bigClients: [],
    throughputClients: [10],
    durationMs: 400,
    processClients: [],
  },
  quick: {
    delayMs: 500,
    clients: [10, 20, 50],
    sequentialMaxMs: 5_000,
    bigClients: [1000],
    throughputClients: [100],
    durationMs: 500,
    processClients: [10],
  },
  full: {
    delayMs: 3000,
    clients: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
    sequentialMaxMs: Infinity,
    bigClients: [1000, 10_000],
    throughputClients: [1, 10, 100, 1000],
    durationMs: 2000,
    processClients: [10, 50, 100],
  },
};

/** Options of {@linkcode runStudy}. */
export interface StudyOptions {
  entry?: string;
  onLog?: (line: string) => void;
  out?: string;
}

/** `1.006`, or `1.006–1.008` for a range. */
function span(values: number[]): string {
  const lo = fmt(Math.min(...values), 3), hi = fmt(Math.max(...values), 3);
  return lo === hi ? lo : `${lo}–${hi}`;
}

function fmt(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

/**
 * Runs the study at a scale and returns its {@linkcode StudyReport}: the
 * published table beside ours (same design columns first), Python baselines,
 * big-N and throughput extras, and findings written from the numbers.
 */
export async function runStudy(
  scale: StudyScale,
  options: StudyOptions = {},
): Promise<StudyReport> {
  const started = performance.now();
  const plan = PLANS[scale];
  const skipped: string[] = [];
  const pythonOk = await havePython();
  if (!pythonOk) skipped.push("Python baselines: python3 is not available");
  const studySpecs: ServerSpec[] = [
    { label: "sequential", kind: "taskserver", mode: "sequential" },
    { label: "process per client", kind: "taskserver", mode: "process", perClient: true },
    { label: "thread per client", kind: "taskserver", mode: "thread", perClient: true },
    { label: "async", kind: "taskserver", mode: "async" },
    { label: "thread pool", kind: "taskserver", mode: "thread", workers: 2 },
    { label: "process pool", kind: "taskserver", mode: "process", workers: 2 },
  ];
  const log = options.onLog;
  const main = await delayTable(studySpecs, plan.clients, plan.delayMs, {
    inProcess: true,
    entry: options.entry,
    onLog: log,
    sequentialMaxMs: plan.sequentialMaxMs,
  });
  skipped.push(...main.skipped);
  const servers = studySpecs.map((s) => s.label);
  const measured = pivot(
    main.cells,
    servers,
    plan.clients,
    `Measured: total execution time (s), ${plan.delayMs} ms delay, in-process clients`,
  );
  measured.columns = [
    "Clients",
    "Single-Process = sequential (s)",
    "Multi-Process = process per client (s)",
    "Multi-Threaded = thread per client (s)",
    "async (s)",
    "thread pool (s)",
    "process pool (s)",
  ];
  const extra: ReportTable[] = [];
  const plots: LinePlot[] = [
    {
      ...delayPlot(main.cells, `Clients against total time (${plan.delayMs} ms delay)`),
    },
    {
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
    },
  ];
  let pythonCells: DelayCell[] = [];
  if (pythonOk) {
    const py = await delayTable(
      [
        { label: "python fork", kind: "python", python: "fork", framing: "study" },
        { label: "python thread", kind: "python", python: "thread", framing: "study" },
      ],
      plan.clients,
      plan.delayMs,
      { inProcess: true, onLog: log },
    );
    pythonCells = py.cells;
    extra.push(
      pivot(
        py.cells,
        ["python fork", "python thread"],
        plan.clients,
        `The study's Python servers here: total execution time (s), ${plan.delayMs} ms delay`,
      ),
    );
  }
  let big: DelayCell[] = [];
  if (plan.bigClients.length > 0) {
    const specs: ServerSpec[] = [
      { label: "async", kind: "taskserver", mode: "async" },
      { label: "thread pool", kind: "taskserver", mode: "thread", workers: 2 },
      { label: "process pool", kind: "taskserver", mode: "process", workers: 2 },
    ];
    big = (await delayTable(specs, plan.bigClients, plan.delayMs, {
      inProcess: true,
      entry: options.entry,
      onLog: log,
    })).cells;
    const pythonBig = plan.bigClients.filter((n) => n <= PYTHON_MAX_CLIENTS);
    if (pythonOk && pythonBig.length > 0) {
      big.push(
        ...(await delayTable(
          [{ label: "python thread", kind: "python", python: "thread", framing: "study" }],
          pythonBig,
          plan.delayMs,
          { inProcess: true, onLog: log },
        )).cells,
      );
    }
    if (pythonOk && pythonBig.length < plan.bigClients.length) {
      skipped.push(
        `the Python servers above ${PYTHON_MAX_CLIENTS} clients (see PYTHON_MAX_CLIENTS)`,
      );
    }
    extra.push({
      title: `Many clients: ${plan.delayMs} ms delay, in-process clients`,
      columns: ["Server", "Clients", "Total (s)", "Total / delay", "Errors"],
      rows: big.map((c) => [
        c.server,
        c.run.clients,
        Number(c.run.totalS.toFixed(3)),
        Number((c.run.totalS * 1000 / plan.delayMs).toFixed(3)),
        c.run.errors,
      ]),
    });
  } else skipped.push(`many clients (1,000 and 10,000): not at scale ${scale}`);
  let processCells: DelayCell[] = [];
  if (plan.processClients.length > 0) {
    processCells = (await delayTable(
      [{ label: "async", kind: "taskserver", mode: "async" }],
      plan.processClients,
      plan.delayMs,
      { inProcess: false, entry: options.entry, onLog: log },
    )).cells;
    extra.push({
      title:
        `Clients as processes (start.sh style, taskserver call), async server, ${plan.delayMs} ms delay`,
      columns: ["Clients", "Total (s)", "Average per client (s)", "Errors"],
      rows: processCells.map((c) => [
        c.run.clients,
        Number(c.run.totalS.toFixed(3)),
        Number(c.run.averageS.toFixed(3)),
        c.run.errors,
      ]),
    });
  } else {skipped.push(
      `clients as processes (start.sh): not at scale ${scale}, in-process clients only`,
    );}
  const tpSpecs: ServerSpec[] = [
    { label: "async", kind: "taskserver", mode: "async" },
    { label: "process pool", kind: "taskserver", mode: "process", workers: 2 },
    ...(pythonOk
      ? [{ label: "python thread", kind: "python", python: "thread" } as ServerSpec]
      : []),
  ];
  const tp = await throughputTable(tpSpecs, plan.throughputClients, plan.durationMs, {
    entry: options.entry,
    onLog: log,
  });
  extra.push(throughputReportTable(tp, `Throughput without delay, ${plan.durationMs} ms per run`));

  // Findings, from the numbers.
  const findings: string[] = [];
  const at = (server: string, n: number) =>
    main.cells.find((c) => c.server === server && c.run.clients === n)?.run;
  const nMax = plan.clients[plan.clients.length - 1];
  const delayS = plan.delayMs / 1000;
  const seq = main.cells.filter((c) => c.server === "sequential");
  if (seq.length > 0) {
    const ratio = seq.map((c) => c.run.totalS / (c.run.clients * delayS));
    findings.push(
      `Agrees with the study: the sequential server's total is N × delay ` +
        `(measured ${span(ratio)} × N × ${delayS} s; ` +
        `the study: 1.001 × N × 3 s), because each client waits for every client before it.`,
    );
  }
  const concurrent = [
    "process per client",
    "thread per client",
    "async",
    "thread pool",
    "process pool",
  ];
  const overheads = concurrent.map((s) => ({ s, run: at(s, nMax) })).filter((x) => x.run);
  if (overheads.length > 0) {
    const parts = overheads.map((x) => `${x.s} ${fmt(x.run!.totalS / delayS, 3)}`);
    const perClient = overheads.filter((x) => x.s.includes("per client"));
    const worst = perClient.length > 0
      ? perClient.reduce((a, b) => (a.run!.totalS > b.run!.totalS ? a : b))
      : undefined;
    findings.push(
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
  const tpAt = (server: string) => tp.find((r) => r.server === server && r.clients === lastN);
  const py = tpAt("python thread");
  const ours = ["async", "process pool"].map(tpAt).filter((r) => r !== undefined);
  if (py && py.rps > 0 && ours.length > 0) {
    const best = ours.reduce((a, b) => (a.rps >= b.rps ? a : b));
    findings.push(
      `Beyond the study: without delay, ${lastN} persistent clients got ` +
        ours.map((r) => `${r.rps} requests/s from ${r.server}`).join(" and ") +
        ` against ${py.rps} from the Python thread-per-client server (best ${
          fmt(best.rps / py.rps, 2)
        }×, same in-process load generator on the same 2 cores, so the generator bounds every figure).`,
    );
  } else if (big.length > 0) {
    const a = big.find((c) => c.server === "async");
    if (a) {
      findings.push(
        `Beyond the study: ${a.run.clients} in-process clients against the async server took ` +
          `${fmt(a.run.totalS, 3)} s with ${a.run.errors} errors.`,
      );
    }
  }
  if (pythonCells.length > 0 && findings.length < 3) {
    const pf = pythonCells.find((c) => c.server === "python fork" && c.run.clients === nMax);
    if (pf) {
      findings.push(
        `The study's own Python fork server took ${
          fmt(pf.run.totalS, 3)
        } s for ${nMax} clients here.`,
      );
    }
  }
  if (plan.delayMs !== 3000) {
    skipped.push(
      `delay ${plan.delayMs} ms instead of the study's 3000 ms at scale ${scale} (compare total/delay)`,
    );
  }
  skipped.push(
    "clients come from this process (the study's start.sh started Python processes); " +
      "start.sh with `taskserver call` runs in the process-client table where the scale has one",
  );
  const report: StudyReport = {
    study: "taskserver",
    seed: "003_fc16dd8ea9eb56a5.txt",
    title: "Task server: one client at a time, a process or a thread per client",
    question:
      "How long do N concurrent clients take against a server that answers after 3 s, when the " +
      "server handles one client at a time, forks a process per client, or starts a thread per client?",
    scale,
    published: PUBLISHED,
    measured,
    extra,
    plots,
    findings,
    skipped,
    options: {
      ...plan,
      sequentialMaxMs: Number.isFinite(plan.sequentialMaxMs) ? plan.sequentialMaxMs : null,
    },
    elapsedMs: Math.round(performance.now() - started),
  };
  if (options.out) {
    await writeStudyReport(options.out, report);
  }
  return report;
}
