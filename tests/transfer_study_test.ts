import { assertEquals, assertOk } from "./_assert.ts";
import { benchTable, measureStudy, runBench } from "../transfer/bench.ts";
import { validateStudyReport } from "../shared/study.ts";
import { assembleStudyReport, runStudy } from "../shared/study_harness.ts";
import { TRANSFER_PLANS, type TransferRaw, transferStudy } from "../transfer/study.ts";
import { liveChildPids } from "../shared/runtime.ts";
import { ENTRY } from "./fixtures/transfer_helpers.ts";

function measureStudyWith(entry: URL): typeof transferStudy.measure {
  return (plan, context) => measureStudy(plan, context, entry);
}

/** Synthetic raw numbers: every figure of the report below follows from these. */
const RAW: TransferRaw = {
  modeMs: { sequential: 100, async: 40, thread: 80, process: 125 },
  rawMs: 10,
  sweep: [1000, 2000, 3000],
  sweepMs: [1, 2, 3],
  referenceMs: [10, 100],
  pythonMs: [30, null],
  multi: { size: 1e7, sequentialMs: 100, threadMs: 50 },
  ceiling: { bytes: 16e6, plan: "fast", ddSeconds: 2, md5sumSeconds: 1, uploadSeconds: 2.5 },
  big: [],
  bigRawMs: 0,
  bigRssMb: null,
  skipped: ["Python STEP peer: needs python3"],
  cpuPressure: 5,
};

Deno.test("transfer study: the report is built from the raw numbers alone (exact)", () => {
  const report = assembleStudyReport(transferStudy, "smoke", RAW, 1234.4);
  assertEquals(validateStudyReport(report), []);
  assertEquals(report.elapsedMs, 1234);
  assertEquals(report.measured.rows, [
    [
      "sequential (one connection, lockstep)",
      "515 blocks of 20480 B",
      "100 ms, 105.5 MB/s (baseline)",
    ],
    [
      "thread (2 connections)",
      "515 blocks of 20480 B",
      "80 ms, 131.8 MB/s, 1.25× sequential",
    ],
    ["process (2 connections)", "515 blocks of 20480 B", "125 ms, 84.4 MB/s, 0.8× sequential"],
    [
      "async (one connection, window 8)",
      "515 blocks of 20480 B",
      "40 ms, 263.7 MB/s, 2.5× sequential",
    ],
    ["raw TCP copy (ceiling)", "the same 10.5 MB", "10 ms, 1054.7 MB/s, 10× sequential"],
    [
      "several TCP connections (thread, 2, lockstep each)",
      "10 MB",
      "0.05 s vs 0.1 s on one connection: 2× as fast",
    ],
    ["upload time vs size", "10 files, 9.5–976.6 KB", "linear fit 1000 ms/MB + 0 ms, R² = 1"],
  ]);
  const [reference, sweep, ceiling] = report.extra;
  assertEquals(reference.rows, [
    ["1 MB", 0.0154, 0.03, 0.01, 1.5, 3],
    ["10 MB", 0.161, null, 0.1, 1.6, null],
  ]);
  assertEquals(sweep.rows, [[1, 1], [2, 2], [2.9, 3]]);
  assertEquals(ceiling.rows, [
    ["dd conv=fdatasync", 2, 8, 1],
    ["md5sum", 1, 16, 2],
    ["transfer upload (default, MD5 verified, stored durably)", 2.5, 6.4, 0.8],
  ]);
  assertEquals(report.findings[0].startsWith("Disagrees with the study on small files"), true);
  assertOk(
    report.findings[0].endsWith("2× as fast, agreeing that several connections help large files."),
  );
  assertOk(report.findings[2].includes("10 MB took 0.1 s"), report.findings[2]);
  assertEquals(report.skipped, ["Python STEP peer: needs python3"]);
  assertEquals(report.options.cpuPressureAvg10, 5);
  assertEquals(report.plots.length, 2);
  assertEquals(TRANSFER_PLANS.smoke.reference.length, 2);
});

Deno.test("transfer study: --scale smoke returns a valid StudyReport", async () => {
  const study = { ...transferStudy, measure: measureStudyWith(ENTRY) };
  const report = await runStudy(study, "smoke");
  assertEquals(validateStudyReport(report), []);
  assertEquals([report.study, report.seed, report.scale], [
    "transfer",
    "001_1aecf54b52870d4c.txt",
    "smoke",
  ]);
  assertEquals(report.measured.columns, report.published.columns);
  assertEquals(report.measured.rows.length, 7);
  assertOk(report.findings.length >= 2 && report.findings.length <= 3);
  // Findings quote the measured numbers, not fixed text.
  assertOk(report.findings[1].includes(String(report.measured.rows[6][2]).split("R² = ")[1]));
  // Generous: the smoke scale takes 10-20 s on this shared machine, and every finished
  // upload is now synced to disk before the server answers.
  assertOk(report.elapsedMs < 120_000, `smoke took ${report.elapsedMs} ms`);
  assertEquals(liveChildPids(), []);
});

Deno.test("transfer bench: every configuration gets a row beside the raw TCP copy", async () => {
  const result = await runBench({
    sizes: [200_000],
    modes: ["sequential", "async"],
    streams: 2,
    window: 4,
    blockSizes: [20480, 65536],
    runs: 1,
    directions: ["upload", "download"],
    iperf: false,
    entry: ENTRY,
  });
  assertEquals(
    result.rows.map((r) => `${r.direction}/${r.mode}/${r.blockSize}`),
    [
      "raw TCP copy/ceiling/null",
      "upload/sequential/20480",
      "download/sequential/20480",
      "upload/async/20480",
      "download/async/20480",
      "upload/sequential/65536",
      "download/sequential/65536",
      "upload/async/65536",
      "download/async/65536",
    ],
  );
  assertOk(result.rows.every((r) => r.mbPerS > 0 && r.size === 200_000));
  assertEquals(benchTable(result).rows.length, 9);
  assertOk(result.serverPeakRssMb !== null && result.serverPeakRssMb > 0);
  assertEquals(liveChildPids(), []);
});
