import { assertEquals, assertOk } from "./_assert.ts";
import { validateStudyReport } from "../shared/study.ts";
import { assembleStudyReport } from "../shared/study_harness.ts";
import { interarrivalStudy } from "../interarrival/study.ts";
import { measureStudy } from "../interarrival/bench_study.ts";
import { PLANS } from "../interarrival/study_plans.ts";
import type { StudyRaw } from "../interarrival/study_report.ts";
import type { AccuracyRow, ThroughputRow } from "../interarrival/bench.ts";
import "../interarrival/main.ts";

const entry = new URL("../interarrival/worker_entry.ts", import.meta.url);
const main = new URL("../interarrival/main.ts", import.meta.url);

function accuracy(client: string, meanMs: number, errorP99: number): AccuracyRow {
  return {
    client,
    meanMs,
    events: 600,
    achievedMeanError: 0.001,
    errorP50: 0.05,
    errorP99,
    gapErrorP50: 0.02,
    gapErrorP99: 0.5,
    serverKsP: 0.5,
    received: 601,
    sent: 601,
  };
}

function throughput(client: string, serverMode: "async" | "thread", p99: number): ThroughputRow {
  return {
    client,
    serverMode,
    workers: 40,
    ratePerWorker: 500,
    seconds: 3,
    sent: 60_040,
    received: 60_040,
    lost: 0,
    miscounted: 0,
    achievedRate: 20_000,
    errorP50: 0.1,
    errorP99: p99,
  };
}

/** Synthetic numbers for the quick plan. */
const RAW: StudyRaw = {
  scenarios: [
    { connectionMs: 2.5, dataMs: 210, messages: 18, sent: 18, sessionMs: 1000 },
    { connectionMs: 60, dataMs: 150, messages: 42, sent: 42, sessionMs: 900 },
    { connectionMs: 400, dataMs: 95, messages: 20, sent: 20, sessionMs: 400 },
  ],
  accuracy: [
    accuracy("interarrival", 10, 0.2),
    accuracy("python (study style)", 10, 8),
    accuracy("interarrival", 1, 0.3),
  ],
  throughput: [
    throughput("interarrival", "async", 1.5),
    throughput("interarrival", "thread", 1.75),
    throughput("python (study style)", "async", 90),
  ],
  udp: [{
    engine: "recvmmsg (FFI)",
    rate: 50_000,
    seconds: 2,
    bytes: 64,
    sent: 100_000,
    received: 99_990,
    expectedLost: 10,
    lost: 10,
    reordered: 0,
    duplicates: 0,
    kernelDrops: 10,
    sendErrors: 0,
    achievedRate: 50_000,
    errorP50: 0.01,
    errorP99: 0.2,
  }],
  ks: [
    {
      protocol: "udp",
      meanMs: 1,
      events: 600,
      receiveKsP: 0.4,
      carriedKsP: 0.3,
      clientKsP: 0.3,
      passed: true,
    },
    {
      protocol: "tcp",
      meanMs: 1,
      events: 600,
      receiveKsP: 0.001,
      carriedKsP: 0.2,
      clientKsP: 0.2,
      passed: true,
    },
  ],
  python: true,
  pressure: "some avg10=5.00 avg60=4.00 avg300=3.00 total=1",
};

Deno.test("interarrival study report: exact tables and findings from synthetic numbers", () => {
  const report = assembleStudyReport(interarrivalStudy, "quick", RAW, 1234.4);
  assertEquals(validateStudyReport(report), []);
  assertEquals([report.study, report.scale, report.elapsedMs], ["interarrival", "quick", 1234]);
  assertEquals(report.published.rows.map((row) => row[3]), [1000, 1510.638, 500]);
  // Quick runs the study's gaps × 0.2: expected means shrink with them.
  assertEquals(report.measured.title, "Measured (this machine, gaps × 0.2)");
  assertEquals(report.measured.rows, [
    ["1: threads, one client", "thr", "-w 3 -n 5 -d u -p 2", 200, 2.5, 210],
    [
      "2: processes, three clients",
      "proc",
      "-w 2 -n 4 -d d -p 1; -w 3 -n 5 -d u -p 2; -w 4 -n 6 -d e -p 0.5",
      302.128,
      60,
      150,
    ],
    [
      "3: iterative, two clients",
      "iter",
      "-w 2 -n 4 -d u -p 1; -w 3 -n 3 -d d -p 0.5",
      100,
      400,
      95,
    ],
  ]);
  assertEquals(report.extra.map((t) => t.title), [
    "Messages sent and counted, and connection sessions",
    "Timing accuracy: exponential gaps, one worker, loopback (ms)",
    "Throughput: constant rate per worker, loopback",
    "UDP at a high packet rate, one flow, loopback",
    "KS check, exponential gaps (p ≥ 0.01 passes)",
  ]);
  assertEquals(report.extra[0].rows[2], ["3: iterative, two clients", 20, 20, 400, 1]);
  assertEquals(report.findings.length, 4);
  assertEquals(
    report.findings[2],
    "Timing: at a 10 ms exponential mean this tool's median send error is 0.05 ms and p99 " +
      "0.2 ms against 8 ms for a study-style Python client (40.0×: sleep-after-send accumulates " +
      "lateness), server KS p = 0.50; at 40 × 500/s the async server lost 0 of 60040 (p99 error " +
      "1.5 ms) and the thread server lost 0 of 60040 (p99 error 1.75 ms), while the Python " +
      "client reached 20000 msg/s of 20000 (p99 90 ms).",
  );
  assertEquals(
    report.findings[3],
    "UDP, 50000 datagrams/s of 64 bytes for 2 s (recvmmsg (FFI)): 99990 of 100000 received; " +
      "the loss report says 10 lost (sent − received = 10), 0 reordered, 0 duplicated, 10 " +
      "dropped by a full socket buffer. Exponential gaps with a 1 ms mean: KS p on receive " +
      "times udp 0.4, tcp 0.001; on the send times the messages carry udp 0.3, tcp 0.2 (TCP " +
      "reads merge messages, so only the carried times test the schedule there).",
  );
  assertEquals(report.skipped, [
    "Time scale 0.2: the study's gaps (seconds) are multiplied by 0.2 to fit the quick budget; " +
    "--scale full runs them at the study's size",
  ]);
  const { scale: _scale, perConnection: _perConnection, ...sizes } = PLANS.quick;
  assertEquals(sizes.timeScale, 0.2);
  assertEquals(report.options, {
    ...sizes,
    python: true,
    cpuPressure: RAW.pressure,
    scenarios: [
      "1: threads, one client",
      "2: processes, three clients",
      "3: iterative, two clients",
    ],
  });
  assertEquals(report.plots[1].points.slice(0, 2), [
    { x: 200, y: 210, series: "measured" },
    { x: 200, y: 200, series: "expected" },
  ]);
});

Deno.test("interarrival study report: smoke without python names what it skipped", () => {
  const report = assembleStudyReport(
    interarrivalStudy,
    "smoke",
    { ...RAW, python: false, accuracy: RAW.accuracy.filter((r) => r.client === "interarrival") },
    1,
  );
  assertEquals(report.skipped.length, 3);
  assertEquals(report.skipped[0], "Python study-style client: python3 is not available");
  assertOk(report.findings[2].includes("0.2 ms, server KS p"), report.findings[2]);
});

Deno.test("interarrival bench --study --scale smoke: measured, a valid StudyReport", async () => {
  const started = performance.now();
  const raw = await measureStudy(PLANS.smoke, { progress: () => {} }, { entry });
  const report = assembleStudyReport(interarrivalStudy, "smoke", raw, performance.now() - started);
  assertEquals(validateStudyReport(report), []);
  assertEquals(report.measured.rows.length, 3);
  // Every message the study's clients sent was counted, in every mode.
  for (const row of report.extra[0].rows) assertEquals(row[1], row[2]);
  assertEquals(report.findings.length, 4);
});

Deno.test("interarrival bench: SIGINT prints what was measured as one JSON document, exits 130", async () => {
  // 20 flows × 1,000/s in one Web Worker: deadlines every ms, a schedule that never
  // waits on a timer (the stop must still reach it).
  const flags = "--no-python --modes async --events 100 --workers 20 --threads 1 --rate 1000 " +
    "--seconds 60 --udp-rate 0 --json";
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-all", "--unstable-net", main.pathname, "bench"]
      .concat(flags.split(" ")),
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  // Progress goes to stderr: signal once the 60 s throughput run has begun, and read
  // stderr to its end (the bench still writes there while it stops).
  let progress = "", signalled = NaN;
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    if (!progress.includes("throughput:") && (progress + chunk).includes("throughput:")) {
      setTimeout(() => {
        signalled = performance.now();
        child.kill("SIGINT");
      }, 1500);
    }
    progress += chunk;
  }
  assertOk(progress.includes("throughput:"), progress);
  const status = await child.status;
  // Stopped well before the 60 s run would have ended (generous bound for a loaded machine).
  assertOk(performance.now() - signalled < 30_000, `${performance.now() - signalled} ms`);
  assertEquals(status.code, 130);
  const doc = JSON.parse(await stdout);
  assertEquals([doc.tool, doc.command], ["interarrival", "bench"]);
  assertEquals(doc.results.interrupted, "stopped by SIGINT");
  assertEquals(doc.results.accuracy.map((r: AccuracyRow) => [r.meanMs, r.sent, r.received]), [
    [10, 101, 101],
    [1, 101, 101],
  ]);
  assertEquals(doc.results.throughput, []);
});
