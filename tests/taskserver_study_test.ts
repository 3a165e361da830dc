import { assertEquals, assertOk } from "./_assert.ts";
import { type Captured, runTool } from "./_command.ts";
import { runStudy } from "../shared/study_harness.ts";
import { taskserverStudy } from "../taskserver/study.ts";
import { validateStudyReport } from "../shared/study.ts";
import { liveChildPids } from "../shared/runtime.ts";

function cli(args: string[]): Promise<Captured> {
  return runTool("taskserver", args);
}

Deno.test("taskserver bench --study --scale smoke: a valid StudyReport with exact answers", async () => {
  const report = await runStudy(
    taskserverStudy(new URL("../taskserver/main.ts", import.meta.url).href),
    "smoke",
  );
  assertEquals(validateStudyReport(report), []);
  assertEquals(report.study, "taskserver");
  assertEquals(report.published.rows.length, 10);
  assertEquals(report.measured.rows.map((row) => row[0]), [5, 10]);
  assertEquals(report.measured.columns.length, 7);
  // Every measured cell that ran is a number (no errors hide as blanks).
  for (const row of report.measured.rows) {
    for (const cell of row.slice(1)) assertOk(cell === null || typeof cell === "number");
  }
  assertOk(report.findings.length >= 2, "findings come from the numbers");
  assertEquals(liveChildPids(), []);
});

Deno.test("taskserver CLI: usage errors exit 2 naming the value, failures exit 1", async () => {
  const badMode = await cli(["serve", "--mode", "bogus", "--port", "0"]);
  assertEquals(badMode.code, 2);
  assertOk(badMode.stderr.includes("Invalid --mode 'bogus'"), badMode.stderr);
  const badOp = await cli(["call", "frob", "x"]);
  assertEquals(badOp.code, 2);
  assertOk(badOp.stderr.includes("Invalid operation 'frob'"), badOp.stderr);
  const refused = await cli(["call", "reverse", "x", "--port", "1"]);
  assertEquals(refused.code, 1);
  assertOk(
    refused.stderr.includes("Cannot connect to 127.0.0.1:1: connection refused"),
    refused.stderr,
  );
  const badScale = await cli(["bench", "--study", "--scale", "huge"]);
  assertEquals(badScale.code, 2);
  assertOk(badScale.stderr.includes('Invalid --scale "huge"'), badScale.stderr);
  const help = await cli(["serve", "--help"]);
  assertEquals(help.code, 0);
  assertOk(help.stdout.includes("(default: 65432)"), help.stdout);
});
