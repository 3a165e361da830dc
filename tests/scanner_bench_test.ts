/** The study report is built from measured numbers (synthetic here, no network). */
import { assertEquals, assertOk } from "./_assert.ts";
import { validateStudyReport } from "../shared/study.ts";
import { type BenchResult, buildStudyReport, planFor } from "../scanner/study.ts";

function synthetic(): BenchResult {
  const ms: Record<string, number[]> = {
    "sequential": [2, 510, 1050],
    "thread ×10": [160, 690, 750],
    "process ×10": [230, 850, 880],
    "async": [1, 505, 540],
  };
  return {
    cells: Object.entries(ms).flatMap(([row, times]) =>
      [1, 100, 1024].map((ports, i) => ({ row, ports, ms: times[i], runs: 1, exact: true }))
    ),
    nmap: [{ ports: 1024, flags: "-sT -Pn -n --min-rate 5000", ms: 230, exact: true }],
    targets: [{
      name: "one open port, start to exit (source)",
      oursMs: 80,
      baseline: "deno run of an empty file",
      baselineMs: 70,
      ratio: 80 / 70,
      goal: "≤ 1.3× deno run (empty file)",
      met: true,
      exact: true,
      runs: 5,
    }],
    engines: [{
      ports: 1024,
      ffiMs: 90,
      connectMs: 140,
      nmapMs: 230,
      ffiExact: true,
      connectExact: true,
    }],
    skipped: ["Only at full scale: thread ×100."],
  };
}

Deno.test("scanner study report: valid, with findings generated from the numbers", () => {
  const report = buildStudyReport("smoke", planFor("smoke"), synthetic(), [], 1234, 500);
  assertEquals(validateStudyReport(report), []);
  assertEquals(report.measured.rows.map((row) => row.slice(1, 4)), [
    [0.002, 0.51, 1.05],
    [0.16, 0.69, 0.75],
    [0.23, 0.85, 0.88],
    [0.001, 0.505, 0.54],
  ]);
  assertEquals(report.findings.length, 3);
  assertOk(report.findings[0].includes("async (0.54 s)"), report.findings[0]);
  assertOk(report.findings[0].includes("1.9×"), report.findings[0]);
  assertOk(report.findings[2].startsWith("Every run found exactly"), report.findings[2]);
  assertEquals(report.skipped, ["Only at full scale: thread ×100."]);
  assertEquals(report.extra.map((t) => t.rows.length), [1, 1, 1]);
  assertEquals(report.extra[1].rows, [[1024, 90, 140, 230, 0.39, 0.61, "yes, yes"]]);
  assertEquals(report.extra[2].rows[0].slice(4), [
    1.14,
    "≤ 1.3× deno run (empty file)",
    "yes",
    "yes",
  ]);
});

Deno.test("scanner study report: without a lab, nothing measured and the reason recorded", () => {
  const report = buildStudyReport("quick", planFor("quick"), null, ["not root"], 5, 500);
  assertEquals(validateStudyReport(report), []);
  assertEquals(report.skipped, ["not root"]);
  assertOk(report.measured.rows.every((row) => row.slice(1).every((cell) => cell === null)));
  assertEquals(report.published.rows.length, 7);
});

Deno.test("scanner study report: at full scale the findings compare 10 and 200 workers", () => {
  const rows = ["sequential", "thread ×10", "process ×10", "thread ×200", "process ×200", "async"];
  const times = [4000, 900, 1500, 1000, 9000, 600];
  const result: BenchResult = {
    cells: rows.map((row, i) => ({ row, ports: 65535, ms: times[i], runs: 3, exact: true })),
    nmap: [],
    targets: [],
    engines: [],
    skipped: [],
  };
  const report = buildStudyReport("full", planFor("full"), result, [], 1, 500);
  assertEquals(validateStudyReport(report), []);
  assertOk(report.findings[1].includes("processes 6×"), report.findings[1]);
  assertOk(report.findings[1].includes("as the study found"), report.findings[1]);
  assertEquals(report.findings.length, 3);
});
