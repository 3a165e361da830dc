/**
 * Benchmark reports: text tables for the terminal, and `--out DIR` files
 * (Markdown, CSV, JSON and SVG line plots) that every tool writes the same way.
 *
 * @module
 */
import type { LinePlot, ReportTable, StudyReport } from "./study.ts";

// The table and plot shapes belong to the lab contract (study.ts); re-exported
// here so that report code imports one module.
export type { LinePlot, PlotPoint, ReportTable } from "./study.ts";

function cell(value: string | number | null): string {
  if (value === null || (typeof value === "number" && !Number.isFinite(value))) return "–";
  return String(value);
}

/**
 * Columns a text takes on a terminal: one per code point, none for combining
 * marks and zero-width characters, two for East Asian wide characters and emoji.
 */
function textWidth(text: string): number {
  let width = 0;
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (/\p{Mn}|\p{Me}|\p{Cf}/u.test(char)) continue;
    const wide = (code >= 0x1100 && code <= 0x115f) || (code >= 0x2e80 && code <= 0xa4cf) ||
      (code >= 0xac00 && code <= 0xd7a3) || (code >= 0xf900 && code <= 0xfaff) ||
      (code >= 0xfe30 && code <= 0xfe4f) || (code >= 0xff00 && code <= 0xff60) ||
      (code >= 0xffe0 && code <= 0xffe6) || (code >= 0x1f300 && code <= 0x1faff) ||
      (code >= 0x20000 && code <= 0x3fffd);
    width += wide ? 2 : 1;
  }
  return width;
}

/**
 * Renders a table for the terminal, with box borders and no colours (the
 * layout cli-table3 drew, without loading it and Node compatibility at start).
 */
export function renderTable(table: ReportTable): string {
  const rows = [table.columns, ...table.rows.map((row) => row.map(cell))];
  const widths = table.columns.map((_, i) =>
    Math.max(...rows.map((row) => textWidth(row[i] ?? "")))
  );
  const rule = (left: string, middle: string, right: string) =>
    left + widths.map((width) => "─".repeat(width + 2)).join(middle) + right;
  const line = (row: string[]) =>
    "│" +
    widths.map((width, i) => {
      const text = row[i] ?? "";
      return ` ${text}${" ".repeat(width - textWidth(text))} `;
    }).join("│") + "│";
  const body = rows.slice(1).flatMap((row) => [rule("├", "┼", "┤"), line(row)]);
  const text = [rule("┌", "┬", "┐"), line(rows[0]), ...body, rule("└", "┴", "┘")].join("\n");
  return (table.title ? `${table.title}\n` : "") + text;
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
