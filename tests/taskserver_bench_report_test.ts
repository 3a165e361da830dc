/**
 * `taskserver bench`'s pure reports fed synthetic numbers (exact tables, findings
 * and skipped parts), and its SIGINT path: what was measured is printed as one
 * JSON document and the exit code is 130.
 */
import { assertEquals } from "./_assert.ts";
import { readUntil, spawnTaskserver } from "./_taskserver_load_server.ts";
import { assembleStudyReport } from "../shared/study_harness.ts";
import { validateStudyReport } from "../shared/study.ts";
import { taskserverStudy } from "../taskserver/study.ts";
import { benchReport, type DelayCell, type StudyRaw } from "../taskserver/study_report.ts";
import type { ThroughputRun } from "../taskserver/load_bench.ts";

function cell(server: string, clients: number, totalS: number, errors = 0): DelayCell {
  return {
    server,
    clientsFrom: "in-process",
    run: { clients, totalS, averageS: totalS / 2, errors },
  };
}

function tp(server: string, clients: number, rps: number, cpu: number | null): ThroughputRun {
  return {
    server,
    clients,
    requests: rps,
    rps,
    p50Ms: 0.5,
    p99Ms: 2,
    p999Ms: 3,
    maxMs: 4,
    errors: 0,
    workers: 0,
    pipeline: 1,
    serverCpuUs: cpu,
  };
}

// The smoke plan: 200 ms delay, clients 5 and 10, sequential up to 4 s.
const RAW: StudyRaw = {
  main: [
    cell("sequential", 5, 1.0),
    cell("sequential", 10, 2.004),
    cell("process per client", 10, 0.3),
    cell("thread per client", 10, 0.25),
    cell("async", 5, 0.2011),
    cell("async", 10, 0.2014),
    cell("thread pool", 10, 0.21),
    cell("process pool", 10, 0.22),
  ],
  mainSkipped: [],
  python: [cell("python fork", 10, 0.24), cell("python thread", 10, 0.23)],
  big: [],
  bigPythonSkipped: false,
  processes: [],
  throughput: [
    tp("async", 10, 30_000, 20),
    tp("process pool", 10, 45_000, 25),
    tp("python thread", 10, 20_000, 40),
  ],
};

Deno.test("taskserver study report: exact tables, findings and skipped parts from synthetic numbers", () => {
  const report = assembleStudyReport(taskserverStudy(), "smoke", RAW, 1234.4);
  assertEquals(validateStudyReport(report), []);
  assertEquals(report.elapsedMs, 1234);
  assertEquals(report.measured.rows, [
    [5, 1, null, null, 0.201, null, null],
    [10, 2.004, 0.3, 0.25, 0.201, 0.21, 0.22],
  ]);
  assertEquals(report.measured.columns[1], "Single-Process = sequential (s)");
  assertEquals(report.extra.map((t) => t.title), [
    "The study's Python servers here: total execution time (s), 200 ms delay",
    "Throughput without delay, 400 ms per run",
  ]);
  assertEquals(report.extra[0].rows, [[5, null, null], [10, 0.24, 0.23]]);
  assertEquals(report.extra[1].rows.map((r) => [r[0], r[3], r[9]]), [
    ["async", 30_000, 20],
    ["process pool", 45_000, 25],
    ["python thread", 20_000, 40],
  ]);
  assertEquals(report.findings, [
    "Agrees with the study: the sequential server's total is N × delay (measured 1.000–1.002 × " +
    "N × 0.2 s; the study: 1.001 × N × 3 s), because each client waits for every client before it.",
    "With 10 concurrent clients the concurrent designs finish in about one delay, as in the study " +
    "(its 100-client runs took 1.07–1.08 × 3 s); here total/delay is process per client 1.500, " +
    "thread per client 1.250, async 1.007, thread pool 1.050, process pool 1.100; the " +
    "worker-per-client designs pay for starting an isolate per client on 2 cores (process per " +
    "client: 10.0 ms per client above the delay), which the pools and async avoid.",
    "Beyond the study: without delay, 10 persistent clients got 30000 requests/s from async and " +
    "45000 requests/s from process pool against 20000 from the Python thread-per-client server " +
    "(best 2.25×, same in-process load generator on the same 2 cores, so the generator bounds " +
    "every figure).",
  ]);
  assertEquals(report.skipped, [
    "many clients (1,000 and 10,000): not at this scale",
    "clients as processes (start.sh): not at this scale, in-process clients only",
    "delay 200 ms instead of the study's 3000 ms at this scale (compare total/delay)",
    "clients come from this process (the study's start.sh started Python processes); start.sh " +
    "with `taskserver call` runs in the process-client table where the scale has one",
  ]);
  assertEquals(report.options.sequentialMaxMs, 4000);
  assertEquals(report.plots.map((p) => p.points.length), [8, 30]);
});

Deno.test("taskserver study report: no python3, and an interrupted run, say so", () => {
  const report = assembleStudyReport(
    taskserverStudy(),
    "full",
    { ...RAW, python: null, interrupted: true, bigPythonSkipped: true },
    1,
  );
  assertEquals(report.skipped.slice(0, 3), [
    "the rest: the run was interrupted",
    "Python baselines: python3 is not available",
    "the Python servers above 1000 clients (see PYTHON_MAX_CLIENTS)",
  ]);
  assertEquals(report.options.sequentialMaxMs, null);
  assertEquals(report.extra[0].title, "Many clients: 3000 ms delay, in-process clients");
});

Deno.test("taskserver bench report: ratio lines and the interrupted note, exact", () => {
  const { text, report, ratios } = benchReport(
    {
      delay: [cell("async", 10, 3.1)],
      skipped: [],
      throughput: RAW.throughput,
      pressure: "1.5% (some, avg10)",
      interrupted: true,
    },
    { clients: [10], delayMs: 3000, inProcess: true, durationMs: 2000 },
    { any: "json" },
  );
  assertEquals(ratios.map((r) => [r.best, r.ratio]), [["process pool", 2.25]]);
  const line = "10 clients: best of ours (process pool) answered 2.25× the Python thread " +
    "server's requests/s (same run, same generator); server CPU per answer 25 against 40 µs " +
    "(1.6× Python's efficiency)";
  assertEquals(text.split("\n").slice(-2), [
    line,
    "Interrupted: what was measured before the stop.",
  ]);
  assertEquals(report.notes, ["Interrupted: what was measured before the stop.", line]);
  assertEquals(
    report.tables[1].title,
    "Throughput without delay, 2000 ms per run, clients from the load generator (0 workers), " +
      "/proc/pressure/cpu 1.5% (some, avg10)",
  );
  assertEquals(report.tables[0].rows, [[10, 3.1]]);
  assertEquals(report.json, { any: "json" });
});

Deno.test("taskserver bench: SIGINT prints what was measured (one JSON document) and exits 130", async () => {
  const child = spawnTaskserver([
    "bench",
    "--clients-in-process",
    "--clients",
    "3,4",
    "--delay",
    "2000",
    "--modes",
    "async",
    "--throughput",
    "",
    "--no-python",
    "--json",
  ]);
  // Interrupt once the first row is measured (its progress line), during the second.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = await readUntil(reader, (t) => t.includes("3 clients: total"), 120_000);
  child.kill("SIGINT");
  const drained = readUntil(reader, () => false, 120_000).then((rest) => void (stderr += rest));
  const [text, status] = await Promise.all([new Response(child.stdout).text(), child.status]);
  await drained;
  assertEquals(status.code, 130, stderr);
  assertEquals(text.trim().split("\n").length, 1, text);
  const document = JSON.parse(text);
  assertEquals(document.results.interrupted, true);
  assertEquals(document.results.delay.map((c: DelayCell) => [c.server, c.run.clients]), [
    ["async", 3],
  ]);
  assertEquals(document.results.delay[0].run.errors, 0);
  assertEquals(document.results.throughput, []);
});
