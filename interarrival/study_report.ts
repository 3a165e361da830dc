/**
 * The interarrival study's pure report: raw numbers and the plan in, the
 * measured table, extra tables, plots and findings out (shared/study_harness.ts
 * assembles them into the lab's StudyReport). Tests feed it synthetic numbers.
 *
 * @module
 */
import type { LinePlot, ReportTable } from "../shared/report.ts";
import type { StudyFindings } from "../shared/study_harness.ts";
import { roundMs } from "../shared/clock.ts";
import type { AccuracyRow, ThroughputRow } from "./bench.ts";
import type { KsRow, UdpRateRow } from "./bench_precision.ts";
import { accuracyTable, ksTable, throughputTable, udpRateTable } from "./bench_tables.ts";
import {
  clientText,
  expectedDataMs,
  SCENARIOS,
  STUDY_COLUMNS,
  type StudyPlan,
} from "./study_plans.ts";

/** What one attempt measured (in the order of {@linkcode SCENARIOS}). */
export interface ScenarioRaw {
  connectionMs: number;
  dataMs: number;
  messages: number;
  sent: number;
  /** Mean session length of a connection (accept to close), ms. */
  sessionMs: number;
}

/** Everything `bench --study` measures. */
export interface StudyRaw {
  scenarios: ScenarioRaw[];
  accuracy: AccuracyRow[];
  throughput: ThroughputRow[];
  udp: UdpRateRow[];
  ks: KsRow[];
  /** Whether python3 ran the study-style client. */
  python: boolean;
  /** /proc/pressure/cpu at the end. */
  pressure: string | null;
}

function pct(x: number): string {
  return `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
}

function skippedParts(raw: StudyRaw, plan: StudyPlan): string[] {
  const skipped: string[] = [];
  if (!raw.python) skipped.push("Python study-style client: python3 is not available");
  if (plan.timeScale !== 1) {
    skipped.push(
      `Time scale ${plan.timeScale}: the study's gaps (seconds) are multiplied by ${plan.timeScale} ` +
        `to fit the ${plan.scale} budget; --scale full runs them at the study's size`,
    );
  }
  if (!plan.perConnection) {
    skipped.push(
      "A worker or child per connection (the study's thr and proc): smoke serves attempts 1 " +
        "and 2 from a pool of 2 instead, since starting a Deno child per connection costs seconds",
    );
  }
  return skipped;
}

function studyPlots(raw: StudyRaw, expected: number[]): LinePlot[] {
  return [
    {
      title: "Timing error percentiles (exponential, 10 ms mean)",
      xLabel: "percentile",
      yLabel: "send time − deadline (ms)",
      yLog: true,
      points: raw.accuracy
        .filter((r) => r.meanMs === 10)
        .flatMap((r) => [
          { x: 50, y: Math.max(r.errorP50, 1e-3), series: r.client },
          { x: 99, y: Math.max(r.errorP99, 1e-3), series: r.client },
        ]),
    },
    {
      title: "Average data inter-arrival: expected vs measured (study attempts)",
      xLabel: "expected data gap (ms)",
      yLabel: "measured average data gap (ms)",
      points: raw.scenarios.flatMap((r, i) => [
        { x: expected[i], y: r.dataMs, series: "measured" },
        { x: expected[i], y: expected[i], series: "expected" },
      ]),
    },
  ];
}

function attemptFindings(raw: StudyRaw, expected: number[]): string[] {
  const a1 = raw.scenarios[0], a3 = raw.scenarios[2];
  // z of the mean of attempt 1's uniform gaps (σ = mean·2/√12) against the requested mean.
  const gaps1 = SCENARIOS[0].clients[0].workers * SCENARIOS[0].clients[0].intervals;
  const zOf = (measured: number, mean: number) =>
    (measured - mean) / ((mean * 2) / Math.sqrt(12) / Math.sqrt(gaps1));
  const noise = (z: number) =>
    `${Math.abs(z) < 2 ? "within" : "outside"} sampling noise, z = ${z.toFixed(2)}`;
  const sentAll = raw.scenarios.reduce((n, r) => n + r.sent, 0);
  const countedAll = raw.scenarios.reduce((n, r) => n + r.messages, 0);
  const ratio3 = (a3.connectionMs / a3.sessionMs).toFixed(2);
  return [
    `Attempt 1 (threads, uniform on [0, T]): the study measured an average data gap of ` +
    `1033.52 ms for an expected 1000 ms (${pct(0.03352)}, ${noise(zOf(1033.52, 1000))}); ` +
    `here ${a1.dataMs} ms for ${expected[0]} ms (${pct(a1.dataMs / expected[0] - 1)}, ` +
    `${noise(zOf(a1.dataMs, expected[0]))}) over ${gaps1} gaps, and ${countedAll} of ` +
    `${sentAll} messages were counted in the three attempts.`,
    `Attempt 3 (iterative): the connection inter-arrival time is ${a3.connectionMs} ms against ` +
    `a mean session of ${a3.sessionMs} ms (ratio ${ratio3}), which agrees with the study's ` +
    `1659.44 ms: an iterative server accepts the next client only after the previous one ` +
    `leaves, so these are accept times, not arrival times. In thread mode connections arrive ` +
    `${a1.connectionMs} ms apart (study: 0.30 ms) because each client worker here is a Web ` +
    `Worker whose start-up, not the server, spaces the connections.`,
  ];
}

function timingFinding(raw: StudyRaw, plan: StudyPlan): string {
  // Other load on the machine (avg10 of /proc/pressure/cpu above 20 %) explains tail latencies.
  const busy = Number(/avg10=([\d.]+)/.exec(raw.pressure ?? "")?.[1] ?? 0) > 20;
  const ours10 = raw.accuracy.find((r) => r.client === "interarrival" && r.meanMs === 10)!;
  const py10 = raw.accuracy.find((r) => r.client !== "interarrival" && r.meanMs === 10);
  const tp = raw.throughput.filter((r) => r.client === "interarrival");
  const pyTp = raw.throughput.find((r) => r.client !== "interarrival");
  const pyPart = py10
    ? ` against ${py10.errorP99} ms for a study-style Python client (` +
      `${(py10.errorP99 / Math.max(ours10.errorP99, 1e-3)).toFixed(1)}×: sleep-after-send ` +
      `accumulates lateness)`
    : "";
  const tpPart = tp
    .map((r) =>
      `the ${r.serverMode} server lost ${r.lost} of ${r.sent} (p99 error ${r.errorP99} ms)`
    )
    .join(" and ");
  const pyTpPart = pyTp
    ? `, while the Python client reached ${pyTp.achievedRate} msg/s of ` +
      `${plan.workers * plan.rate} (p99 ${pyTp.errorP99} ms)`
    : "";
  return `Timing: at a 10 ms exponential mean this tool's median send error is ` +
    `${ours10.errorP50} ms and p99 ${ours10.errorP99} ms${pyPart}, server KS p = ` +
    `${ours10.serverKsP?.toPrecision(2)}; at ${plan.workers} × ${plan.rate}/s ${tpPart}` +
    `${pyTpPart}` +
    (busy ? `; CPU pressure (${raw.pressure}) inflates every p99 here.` : ".");
}

function precisionFinding(raw: StudyRaw): string {
  const u = raw.udp[0], ks = raw.ks;
  return `UDP, ${u.rate} datagrams/s of 64 bytes for ${u.seconds} s (${u.engine}): ` +
    `${u.received} of ${u.sent} received; the loss report says ${u.lost} lost (sent − ` +
    `received = ${u.expectedLost}), ${u.reordered} reordered, ${u.duplicates} duplicated, ` +
    `${u.kernelDrops ?? "unknown"} dropped by a full socket buffer. Exponential gaps with a ` +
    `1 ms mean: KS p on receive times ` +
    `${ks.map((k) => `${k.protocol} ${k.receiveKsP}`).join(", ")}; on the send times the ` +
    `messages carry ${ks.map((k) => `${k.protocol} ${k.carriedKsP}`).join(", ")} (TCP reads ` +
    `merge messages, so only the carried times test the schedule there).`;
}

/** Pure: the study's tables, plots and findings from raw numbers. */
export function studyReport(raw: StudyRaw, plan: StudyPlan): StudyFindings {
  const expected = SCENARIOS.map((s) => roundMs(expectedDataMs(s.clients, plan.timeScale)));
  const measured: ReportTable = {
    title: `Measured (this machine, gaps × ${plan.timeScale})`,
    columns: STUDY_COLUMNS,
    rows: raw.scenarios.map((r, i) => [
      SCENARIOS[i].attempt,
      SCENARIOS[i].studyMode,
      clientText(SCENARIOS[i].clients),
      expected[i],
      r.connectionMs,
      r.dataMs,
    ]),
  };
  const counts: ReportTable = {
    title: "Messages sent and counted, and connection sessions",
    columns: ["attempt", "sent", "counted", "mean session (ms)", "connection gap / session"],
    rows: raw.scenarios.map((r, i) => [
      SCENARIOS[i].attempt,
      r.sent,
      r.messages,
      r.sessionMs,
      roundMs(r.connectionMs / r.sessionMs),
    ]),
  };
  const { scale: _scale, perConnection: _perConnection, ...sizes } = plan;
  return {
    measured,
    extra: [
      counts,
      accuracyTable(raw.accuracy),
      throughputTable(raw.throughput),
      udpRateTable(raw.udp),
      ksTable(raw.ks),
    ],
    plots: studyPlots(raw, expected),
    findings: [
      ...attemptFindings(raw, expected),
      timingFinding(raw, plan),
      precisionFinding(raw),
    ],
    skipped: skippedParts(raw, plan),
    options: {
      ...sizes,
      python: raw.python,
      cpuPressure: raw.pressure,
      scenarios: SCENARIOS.map((s) => s.attempt),
    },
  };
}
