import { assertEquals, assertOk } from "./_assert.ts";
import { csvTable, markdownTable, renderTable, writeReport } from "../shared/report.ts";

const table = { columns: ["mode", "time (s)"], rows: [["thread", 1.5], ["a,b", null]] };

Deno.test("report: Markdown and CSV tables", () => {
  assertEquals(
    markdownTable(table),
    "| mode | time (s) |\n|---|---|\n| thread | 1.5 |\n| a,b | – |\n",
  );
  assertEquals(csvTable(table), 'mode,time (s)\nthread,1.5\n"a,b",\n');
});

Deno.test("report: writes Markdown, CSV, JSON and an SVG plot", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await writeReport(dir, {
      name: "demo",
      title: "Demo",
      tables: [table],
      plots: [{
        title: "t",
        xLabel: "ports",
        yLabel: "s",
        xLog: true,
        points: [{ x: 1, y: 2, series: "thread" }, { x: 100, y: 3, series: "thread" }],
      }],
      json: { ok: true },
    });
    assertEquals(files.map((f) => f.slice(dir.length + 1)), [
      "demo.md",
      "demo.csv",
      "demo.json",
      "demo.svg",
    ]);
    assertOk((await Deno.readTextFile(`${dir}/demo.svg`)).startsWith("<svg"));
    assertEquals(JSON.parse(await Deno.readTextFile(`${dir}/demo.json`)), { ok: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report: terminal tables have box borders, a rule between rows, wide characters counted", () => {
  const text = renderTable({
    title: "T",
    columns: ["case", "ms"],
    rows: [["한국", 1.5], ["long case", null]],
  });
  assertEquals(
    text,
    [
      "T",
      "┌───────────┬─────┐",
      "│ case      │ ms  │",
      "├───────────┼─────┤",
      "│ 한국      │ 1.5 │",
      "├───────────┼─────┤",
      "│ long case │ –   │",
      "└───────────┴─────┘",
    ].join("\n"),
  );
});
