/**
 * The contract between each tool's `bench --study` run and the lab
 * (`deno task lab`): one {@linkcode StudyReport} per study, printed as the
 * `results` of the tool's `--json` document. The lab only reads this shape, so a
 * tool can change how it measures without touching the lab.
 *
 * @module
 */
import { UsageError } from "./errors.ts";

/** A table: column headers and rows of cells. */
export interface ReportTable {
  title?: string;
  columns: string[];
  rows: (string | number | null)[][];
}

/** One point of a line plot. */
export interface PlotPoint {
  x: number;
  y: number;
  /** The line (series) it belongs to. */
  series: string;
}

/** A line plot. */
export interface LinePlot {
  title: string;
  xLabel: string;
  yLabel: string;
  points: PlotPoint[];
  xLog?: boolean;
  yLog?: boolean;
}

/** The scales a study can run at: CI smoke (< 30 s), quick (< 1 min), the study's full size. */
export type StudyScale = "smoke" | "quick" | "full";

/** All study scales, smallest first. */
export const STUDY_SCALES: readonly StudyScale[] = ["smoke", "quick", "full"];

/** The five studies, named after the tool that reproduces each. */
export type StudyName = "scanner" | "transfer" | "taskserver" | "interarrival" | "ipcbench";

/** The five studies in the order the lab runs and shows them. */
export const STUDY_NAMES: readonly StudyName[] = [
  "scanner",
  "transfer",
  "taskserver",
  "interarrival",
  "ipcbench",
];

/** What one tool's `bench --study --scale S --json` reports. */
export interface StudyReport {
  /** Which study. */
  study: StudyName;
  /** The seed file it reproduces, e.g. `000_843b4a2b6ac115e1.txt`. */
  seed: string;
  /** Section heading, e.g. "Port scanning: sequential, threads, processes". */
  title: string;
  /** The question the study asked, in one or two sentences. */
  question: string;
  /** The scale this run used. */
  scale: StudyScale;
  /** The study's own published table, transcribed. */
  published: ReportTable;
  /** The same table (same columns where possible) measured on this machine. */
  measured: ReportTable;
  /** Further tables (e.g. the corrected figures, a comparison with nmap). */
  extra: ReportTable[];
  /** Plots, rendered to SVG by the lab with `renderLinePlot`. */
  plots: LinePlot[];
  /**
   * Two or three sentences generated from the measured numbers: where this
   * machine agrees with the study, where it does not, and why.
   */
  findings: string[];
  /** Parts skipped and why (no root for a namespace, no nmap installed, ...). */
  skipped: string[];
  /** The options the run used (sizes, repeats, modes). */
  options: Record<string, unknown>;
  /** Wall time of the whole study run, in milliseconds. */
  elapsedMs: number;
}

/** Parses `--scale`, throwing a usage error that names the bad value. */
export function parseScale(text: string): StudyScale {
  if ((STUDY_SCALES as readonly string[]).includes(text)) return text as StudyScale;
  throw new UsageError(
    `Invalid --scale "${text}": expected one of ${STUDY_SCALES.join(", ")}`,
  );
}

/**
 * Checks that a value has the {@linkcode StudyReport} shape; returns the list of
 * problems (empty when it conforms). Used by the lab and by `.ci/run`'s smoke check.
 */
export function validateStudyReport(value: unknown): string[] {
  const problems: string[] = [];
  if (typeof value !== "object" || value === null) return ["not an object"];
  const r = value as Record<string, unknown>;
  const str = (key: string) => {
    if (typeof r[key] !== "string" || (r[key] as string).length === 0) {
      problems.push(`${key}: expected a non-empty string`);
    }
  };
  const table = (key: string, t: unknown) => {
    const tt = t as ReportTable | undefined;
    if (!tt || !Array.isArray(tt.columns) || !Array.isArray(tt.rows)) {
      problems.push(`${key}: expected a table with columns and rows`);
      return;
    }
    tt.rows.forEach((row, i) => {
      if (!Array.isArray(row) || row.length !== tt.columns.length) {
        problems.push(`${key}.rows[${i}]: expected ${tt.columns.length} cells`);
      }
    });
  };
  if (!(STUDY_NAMES as readonly string[]).includes(r.study as string)) {
    problems.push(`study: expected one of ${STUDY_NAMES.join(", ")}`);
  }
  for (const key of ["seed", "title", "question"]) str(key);
  if (!(STUDY_SCALES as readonly string[]).includes(r.scale as string)) {
    problems.push("scale: expected smoke, quick or full");
  }
  table("published", r.published);
  table("measured", r.measured);
  if (!Array.isArray(r.extra)) problems.push("extra: expected an array");
  else r.extra.forEach((t, i) => table(`extra[${i}]`, t));
  if (!Array.isArray(r.plots)) problems.push("plots: expected an array");
  else {
    r.plots.forEach((p, i) => {
      const plot = p as LinePlot;
      if (typeof plot?.title !== "string" || !Array.isArray(plot.points)) {
        problems.push(`plots[${i}]: expected a title and points`);
      }
    });
  }
  for (const key of ["findings", "skipped"]) {
    if (!Array.isArray(r[key]) || !(r[key] as unknown[]).every((s) => typeof s === "string")) {
      problems.push(`${key}: expected an array of strings`);
    }
  }
  if (!Array.isArray(r.findings) || r.findings.length === 0) {
    problems.push("findings: expected at least one sentence");
  }
  if (typeof r.options !== "object" || r.options === null) {
    problems.push("options: expected an object");
  }
  if (typeof r.elapsedMs !== "number") problems.push("elapsedMs: expected a number");
  return problems;
}
