/**
 * Renders the lab's results as one self-contained HTML page (inline CSS and SVG,
 * no network needed to open it) and as Markdown. Pure functions: data in, text out.
 *
 * @module
 */
import type { ReportTable } from "../shared/report.ts";
import type { StudyReport } from "../shared/study.ts";

/** The machine the lab ran on. */
export interface MachineInfo {
  hostname: string;
  os: string;
  kernel: string;
  arch: string;
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  denoVersion: string;
  v8Version: string;
  /** `/proc/pressure/cpu` "some avg10" before and after the lab (null when absent). */
  cpuPressureBefore: number | null;
  cpuPressureAfter: number | null;
}

/** A study that could not produce a report. */
export interface StudyFailure {
  study: string;
  error: string;
  /** The last lines the tool wrote on stderr. */
  stderrTail: string[];
}

/** Everything in `results.json`. */
export interface LabResults {
  tool: "lab";
  version: string;
  generatedAt: string;
  machine: MachineInfo;
  options: { scale: string; only: string[]; from: "source" | "bundle" | "binary"; out: string };
  studies: StudyReport[];
  failures: StudyFailure[];
  elapsedMs: number;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

function cellText(value: string | number | null): string {
  if (value === null || (typeof value === "number" && !Number.isFinite(value))) return "–";
  return String(value);
}

function htmlTable(table: ReportTable, caption?: string): string {
  const head = table.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const body = table.rows.map((row) =>
    `<tr>${
      row.map((v) =>
        `<td class="${typeof v === "number" ? "num" : ""}">${escapeHtml(cellText(v))}</td>`
      )
        .join("")
    }</tr>`
  ).join("\n");
  const title = caption ?? table.title;
  // Tables with many columns take the whole width rather than scroll in half of it.
  const wide = table.columns.length > 6 ? " wide" : "";
  return `<div class="tbl${wide}"><table>${
    title ? `<caption>${escapeHtml(title)}</caption>` : ""
  }<thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

function mdTable(table: ReportTable, caption?: string): string {
  const esc = (t: string) => t.replaceAll("|", "\\|").replaceAll("\n", " ");
  const title = caption ?? table.title;
  return [
    ...(title ? [`**${esc(title)}**`, ""] : []),
    `| ${table.columns.map(esc).join(" | ")} |`,
    `|${table.columns.map(() => "---").join("|")}|`,
    ...table.rows.map((row) => `| ${row.map((v) => esc(cellText(v))).join(" | ")} |`),
  ].join("\n");
}

function bytesText(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

function secondsText(ms: number): string {
  return ms >= 60_000
    ? `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`
    : `${(ms / 1000).toFixed(1)} s`;
}

/** One line describing the machine. */
export function machineLine(m: MachineInfo): string {
  const pressure = m.cpuPressureBefore === null
    ? ""
    : `; CPU pressure (some, avg10) ${m.cpuPressureBefore}% before, ${m.cpuPressureAfter}% after`;
  return `${m.cores} cores (${m.cpuModel}), ${
    bytesText(m.memoryBytes)
  } memory, ${m.os} ${m.kernel} ` +
    `${m.arch}, Deno ${m.denoVersion} (V8 ${m.v8Version})${pressure}`;
}

const STYLE = `
:root { color-scheme: light; --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --accent:#2f6fdb; --warn:#9a5b00; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #f6f7f9; }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 28px 40px 18px; }
header h1 { margin: 0 0 6px; font-size: 26px; }
header p { margin: 4px 0; color: var(--muted); }
nav { margin-top: 12px; display: flex; flex-wrap: wrap; gap: 8px; }
nav a { text-decoration: none; color: var(--accent); border: 1px solid var(--line); border-radius: 999px; padding: 3px 12px; background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 40px 60px; }
section.study { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 22px 28px; margin: 22px 0; }
section.study h2 { margin: 0 0 4px; font-size: 21px; }
.question { margin: 10px 0 14px; padding: 8px 14px; border-left: 4px solid var(--accent); background: #f2f6fd; }
.findings li { margin: 4px 0; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 540px), 1fr)); gap: 18px; align-items: start; }
.tbl { overflow-x: auto; min-width: 0; }
.tbl.wide { grid-column: 1 / -1; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
caption { text-align: left; font-weight: 600; padding: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
td.num { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f5f8; }
table.wrap td { white-space: normal; }
section.glance { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 28px; margin: 22px 0; }
section.glance h2 { margin: 0 0 8px; font-size: 19px; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; margin-top: 14px; }
.plot { border: 1px solid var(--line); border-radius: 8px; padding: 6px; background: #fff; max-width: 100%; overflow-x: auto; }
.skipped { color: var(--warn); }
.failed { color: #b00020; }
.meta { color: var(--muted); font-size: 13px; margin-top: 10px; }
details { margin-top: 10px; }
pre { white-space: pre-wrap; font-size: 12px; background: #f3f5f8; padding: 8px; border-radius: 6px; }
`;

/**
 * A check the page runs on load: every study section must hold its tables and
 * as many SVG plots as it declares. The result lands in `body[data-check]`, so a
 * headless browser (and the test) can read it from the DOM.
 */
const CHECK_SCRIPT = `
(function () {
  var problems = [];
  document.querySelectorAll("section.study:not(.failed-study)").forEach(function (s) {
    var want = Number(s.getAttribute("data-plots"));
    var got = s.querySelectorAll(".plot svg").length;
    if (got !== want) problems.push(s.id + ": " + got + " of " + want + " plots");
    if (s.querySelectorAll("table").length < 2) problems.push(s.id + ": tables missing");
  });
  document.body.setAttribute("data-check", problems.length ? "problems: " + problems.join("; ") : "ok");
})();
`;

/** The summary at the top: one line per study with its first finding. */
function glance(results: LabResults): string {
  const rows = [
    ...results.studies.map((s) =>
      `<tr><td><a href="#study-${s.study}">${escapeHtml(s.title)}</a></td><td>${
        escapeHtml(s.findings[0] ?? "")
      }</td></tr>`
    ),
    ...results.failures.map((f) =>
      `<tr><td><a href="#study-${escapeHtml(f.study)}">${
        escapeHtml(f.study)
      }</a></td><td class="failed">did not run: ${escapeHtml(f.error)}</td></tr>`
    ),
  ];
  return `<section class="glance"><h2>At a glance</h2><table class="wrap"><thead><tr><th>Study</th>` +
    `<th>Headline</th></tr></thead><tbody>${rows.join("\n")}</tbody></table></section>`;
}

/**
 * Renders the report page. `svgs[i][j]` is the SVG of plot `j` of study `i`
 * (rendered beforehand, because rendering is asynchronous).
 */
export function renderLabHtml(results: LabResults, svgs: string[][]): string {
  const nav = [
    ...results.studies.map((s) => `<a href="#study-${s.study}">${escapeHtml(s.title)}</a>`),
    ...results.failures.map((f) =>
      `<a href="#study-${f.study}">${escapeHtml(f.study)} (failed)</a>`
    ),
  ].join("\n");
  const sections = results.studies.map((s, i) => {
    const plots = (svgs[i] ?? []).map((svg) => `<div class="plot">${svg}</div>`).join("\n");
    const extra = s.extra.map((t) => htmlTable(t)).join("\n");
    const skipped = s.skipped.length
      ? `<div class="skipped"><strong>Skipped or scaled down:</strong><ul>${
        s.skipped.map((item) => `<li>${escapeHtml(item)}</li>`).join("")
      }</ul></div>`
      : "";
    return `<section class="study" id="study-${s.study}" data-plots="${s.plots.length}">
<h2>${escapeHtml(s.title)}</h2>
<p class="meta">Study <code>${escapeHtml(s.seed)}</code> · scale ${escapeHtml(s.scale)} · ran in ${
      secondsText(s.elapsedMs)
    }</p>
<div class="question"><strong>The question.</strong> ${escapeHtml(s.question)}</div>
<h3>What this machine says</h3>
<ul class="findings">${s.findings.map((f) => `<li>${escapeHtml(f)}</li>`).join("")}</ul>
${skipped}
<div class="tables">
${htmlTable(s.published, s.published.title ?? "Published in the study")}
${htmlTable(s.measured, s.measured.title ?? "Measured here")}
${extra}
</div>
<div class="plots">${plots}</div>
<details><summary>Options used</summary><pre>${
      escapeHtml(JSON.stringify(s.options, null, 2))
    }</pre></details>
</section>`;
  });
  const failures = results.failures.map((f) =>
    `<section class="study failed-study" id="study-${escapeHtml(f.study)}" data-plots="0">
<h2>${escapeHtml(f.study)}</h2>
<p class="failed"><strong>This study did not run:</strong> ${escapeHtml(f.error)}</p>
${f.stderrTail.length ? `<pre>${escapeHtml(f.stderrTail.join("\n"))}</pre>` : ""}
</section>`
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>netconc lab: five network-concurrency studies reproduced</title>
<style>${STYLE}</style>
</head>
<body data-check="pending">
<header>
<h1>netconc lab: five network-concurrency studies, reproduced on this machine</h1>
<p>Generated ${escapeHtml(results.generatedAt)} at the <strong>${
    escapeHtml(results.options.scale)
  }</strong> scale in ${secondsText(results.elapsedMs)}, from the ${
    escapeHtml(results.options.from)
  } build.</p>
<p>Machine: ${escapeHtml(machineLine(results.machine))}.</p>
<nav>${nav}</nav>
</header>
<main>
${glance(results)}
${sections.join("\n")}
${failures.join("\n")}
</main>
<script>${CHECK_SCRIPT}</script>
</body>
</html>
`;
}

/** Renders the report as Markdown; plots are linked as `plots/<study>-<n>.svg`. */
export function renderLabMarkdown(results: LabResults): string {
  const out: string[] = [
    "# netconc lab: five network-concurrency studies, reproduced on this machine",
    "",
    `Generated ${results.generatedAt} at the **${results.options.scale}** scale in ${
      secondsText(results.elapsedMs)
    }.`,
    "",
    `Machine: ${machineLine(results.machine)}.`,
    "",
  ];
  for (const s of results.studies) {
    out.push(`## ${s.title}`, "", `Study \`${s.seed}\`, scale ${s.scale}.`, "");
    out.push(`> ${s.question}`, "");
    for (const f of s.findings) out.push(`- ${f}`);
    out.push("");
    if (s.skipped.length) {
      out.push("Skipped or scaled down:", "", ...s.skipped.map((item) => `- ${item}`), "");
    }
    out.push(mdTable(s.published, s.published.title ?? "Published in the study"), "");
    out.push(mdTable(s.measured, s.measured.title ?? "Measured here"), "");
    for (const t of s.extra) out.push(mdTable(t), "");
    s.plots.forEach((p, j) => out.push(`![${p.title}](plots/${s.study}-${j + 1}.svg)`, ""));
  }
  for (const f of results.failures) {
    out.push(`## ${f.study}`, "", `This study did not run: ${f.error}`, "");
  }
  return out.join("\n");
}
