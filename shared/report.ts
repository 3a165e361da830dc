/**
 * Benchmark reports: text tables for the terminal, and `--out DIR` files
 * (Markdown, CSV, JSON and SVG line plots) that every tool writes the same way.
 *
 * @module
 */
import Table from "cli-table3";
import type { LinePlot, ReportTable, StudyReport } from "./study.ts";

// The table and plot shapes belong to the lab contract (study.ts); re-exported
// here so that report code imports one module.
export type { LinePlot, PlotPoint, ReportTable } from "./study.ts";

function cell(value: string | number | null): string {
  if (value === null || (typeof value === "number" && !Number.isFinite(value))) return "–";
  return String(value);
}

/** Renders a table for the terminal, with box borders and no colours. */
export function renderTable(table: ReportTable): string {
  const t = new Table({ head: table.columns, style: { head: [], border: [] } });
  for (const row of table.rows) t.push(row.map(cell));
  return (table.title ? `${table.title}\n` : "") + t.toString();
}

/** Renders a table as GitHub Markdown. */
export function markdownTable(table: ReportTable): string {
  const esc = (text: string) => text.replaceAll("|", "\\|");
  const lines = [
    `| ${table.columns.map(esc).join(" | ")} |`,
    `|${table.columns.map(() => "---").join("|")}|`,
    ...table.rows.map((row) => `| ${row.map((value) => esc(cell(value))).join(" | ")} |`),
  ];
  return (table.title ? `### ${table.title}\n\n` : "") + lines.join("\n") + "\n";
}

/** Renders a table as CSV (RFC 4180 quoting). */
export function csvTable(table: ReportTable): string {
  const quote = (value: string | number | null) => {
    const text = value === null ? "" : String(value);
    return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [table.columns, ...table.rows].map((row) => row.map(quote).join(",")).join("\n") + "\n";
}

/**
 * Renders a line plot (one line per series) as a standalone SVG, headless, with
 * Vega-Lite. The libraries load on first use, so tools that never plot never pay.
 */
export async function renderLinePlot(plot: LinePlot): Promise<string> {
  const vl = await import("vega-lite");
  const vega = await import("vega");
  const spec = vl.compile({
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: plot.title,
    width: 560,
    height: 340,
    background: "white",
    data: { values: plot.points },
    mark: { type: "line", point: true },
    encoding: {
      x: {
        field: "x",
        type: "quantitative",
        title: plot.xLabel,
        scale: plot.xLog ? { type: "log" } : { zero: false },
      },
      y: {
        field: "y",
        type: "quantitative",
        title: plot.yLabel,
        scale: plot.yLog ? { type: "log" } : { zero: false },
      },
      color: { field: "series", type: "nominal", title: null },
    },
    // deno-lint-ignore no-explicit-any
  } as any).spec;
  const view = new vega.View(vega.parse(spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Everything a `--out DIR` report holds. */
export interface Report {
  /** Base name of the files (e.g. `scanner-bench`). */
  name: string;
  title: string;
  /** Paragraphs placed above the tables in the Markdown. */
  notes?: string[];
  tables: ReportTable[];
  plots?: LinePlot[];
  /** The whole result, written as `<name>.json`. */
  json: unknown;
}

/**
 * Writes `<name>.md`, one `<name>[-N].csv` per table, `<name>.json` and
 * `<name>[-N].svg` per plot into `dir` (created if missing). Returns the paths.
 */
export async function writeReport(dir: string, report: Report): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const written: string[] = [];
  const write = async (file: string, text: string) => {
    const path = `${dir.replace(/\/$/, "")}/${file}`;
    await Deno.writeTextFile(path, text);
    written.push(path);
  };
  const suffix = (i: number, n: number) => (n > 1 ? `-${i + 1}` : "");
  const plots = report.plots ?? [];
  const svgNames = plots.map((_, i) => `${report.name}${suffix(i, plots.length)}.svg`);
  const markdown = [
    `# ${report.title}`,
    "",
    ...(report.notes ?? []).flatMap((note) => [note, ""]),
    ...report.tables.map(markdownTable),
    ...svgNames.map((svg, i) => `![${plots[i].title}](${svg})\n`),
  ].join("\n");
  await write(`${report.name}.md`, markdown);
  for (const [i, table] of report.tables.entries()) {
    await write(`${report.name}${suffix(i, report.tables.length)}.csv`, csvTable(table));
  }
  await write(`${report.name}.json`, JSON.stringify(report.json, null, 2) + "\n");
  for (const [i, plot] of plots.entries()) await write(svgNames[i], await renderLinePlot(plot));
  return written;
}

/**
 * A study report as the terminal shows it: title, question, the published and
 * measured tables and any extra ones, the findings, and what was skipped.
 */
export function studyText(report: StudyReport, notes: string[] = []): string {
  return [
    report.title,
    report.question,
    "",
    [report.published, report.measured, ...report.extra].map(renderTable).join("\n\n"),
    "",
    ...report.findings.map((finding) => `- ${finding}`),
    ...notes,
    ...report.skipped.map((item) => `Skipped: ${item}`),
  ].join("\n") + "\n";
}

/**
 * Writes a study report's `--out DIR` files (`<study>-study.md`, one CSV per
 * table, the JSON and the SVG plots); returns the paths.
 */
export function writeStudyReport(
  dir: string,
  report: StudyReport,
  notes: string[] = [],
): Promise<string[]> {
  return writeReport(dir, {
    name: `${report.study}-study`,
    title: report.title,
    notes: [
      report.question,
      ...report.findings,
      ...notes,
      ...report.skipped.map((item) => `Skipped: ${item}`),
    ],
    tables: [report.published, report.measured, ...report.extra],
    plots: report.plots,
    json: report,
  });
}
