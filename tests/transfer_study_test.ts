import { assertEquals, assertOk } from "./_assert.ts";
import { runStudy } from "../transfer/bench.ts";
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
  assertOk(report.elapsedMs < 20_000, `smoke took ${report.elapsedMs} ms`);
  assertEquals(liveChildPids(), []);
});
