/** `scanner bench --study --scale smoke --json` prints one valid StudyReport. */
import { assertEquals, assertOk } from "./_assert.ts";
import { validateStudyReport } from "../shared/study.ts";
import { runTool } from "./_command.ts";

Deno.test("scanner bench --study --scale smoke: a valid StudyReport", async () => {
  const output = await runTool("scanner", ["bench", "--study", "--scale", "smoke", "--json", "-q"]);
  assertEquals(output.code, 0, output.stderr);
  const doc = JSON.parse(output.stdout);
  assertEquals([doc.tool, doc.command], ["scanner", "bench"]);
  assertEquals(validateStudyReport(doc.results), []);
  assertEquals(doc.results.study, "scanner");
  assertEquals(doc.results.scale, "smoke");
  assertEquals(doc.results.published.rows.length, 7);
  if (doc.results.skipped.length === 0) {
    // Measured in the lab: every cell found exactly the lab's ports (no `*`).
    const cells = doc.results.measured.rows.flatMap((row: unknown[]) => row.slice(1));
    assertOk(
      cells.every((cell: unknown) => typeof cell === "number" || cell === null),
      JSON.stringify(cells),
    );
  }
});
