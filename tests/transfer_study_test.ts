import { assertEquals, assertOk } from "./_assert.ts";
import { benchTable, runBench, runStudy } from "../transfer/bench.ts";
import { validateStudyReport } from "../shared/study.ts";
import { liveChildPids } from "../shared/runtime.ts";
import { ENTRY } from "./fixtures/transfer_helpers.ts";

Deno.test("transfer study: --scale smoke returns a valid StudyReport", async () => {
  const report = await runStudy("smoke", { entry: ENTRY });
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
