/**
 * The study harness: a study is data plus two functions.
 *
 * - `plans`: what to run at each scale (smoke, quick, full), as plain data;
 * - `published`: the study's own table, transcribed;
 * - `measure(plan, context)`: runs the measurements and returns raw numbers. It
 *   only measures: no tables, no sentences, no printing (progress goes through
 *   `context.progress`);
 * - `report(raw, plan)`: pure. It turns raw numbers into the measured table,
 *   the extra tables, the plots and the findings' sentences, so a test can feed it
 *   synthetic numbers and assert the exact report.
 *
 * {@linkcode runStudy} ties them together into the {@linkcode StudyReport} the lab
 * reads; `shared/bench_command.ts` gives every tool the same `bench` command
 * around it. A tool's study lives in `<tool>/study.ts` (plans, published data,
 * `report`), its measurements in `<tool>/bench.ts`.
 *
 * @module
 */
import type { LinePlot, ReportTable, StudyName, StudyReport, StudyScale } from "./study.ts";

/** What `measure` receives besides its plan. */
export interface StudyContext {
  /** The scale being run. */
  scale: StudyScale;
  /** One progress line for stderr (the harness adds no newline handling). */
  progress: (line: string) => void;
  /** Aborted when the run is interrupted. */
  signal?: AbortSignal;
}

/** What a study's pure `report` builds from raw numbers; the harness adds the rest. */
export interface StudyFindings {
  /** The published table's shape, measured on this machine. */
  measured: ReportTable;
  /** Further tables (corrected figures, a comparison with a peer program). */
  extra?: ReportTable[];
  plots?: LinePlot[];
  /** Sentences generated from the numbers: where this machine agrees, where not, why. */
  findings: string[];
  /** Parts not measured, each with its reason (taken from the raw numbers). */
  skipped?: string[];
  /** The options the run used; default: the plan itself. */
  options?: Record<string, unknown>;
}

/** A study: its description, plans per scale, published data, and two functions. */
export interface Study<Plan, Raw> {
  name: StudyName;
  /** The seed file it reproduces, e.g. `000_843b4a2b6ac115e1.txt`. */
  seed: string;
  title: string;
  question: string;
  /** What to run at each scale (plain data, so tests and `--help` can show it). */
  plans: Readonly<Record<StudyScale, Plan>>;
  /** The study's own table, transcribed. */
  published: ReportTable;
  /** Runs the measurements; returns raw numbers only. */
  measure(plan: Plan, context: StudyContext): Promise<Raw>;
  /** Pure: raw numbers and the plan in, findings out. */
  report(raw: Raw, plan: Plan): StudyFindings;
}

/**
 * Builds the {@linkcode StudyReport} from raw numbers without measuring: what
 * {@linkcode runStudy} does after `measure`, and what tests call with synthetic
 * numbers.
 */
export function assembleStudyReport<Plan, Raw>(
  study: Study<Plan, Raw>,
  scale: StudyScale,
  raw: Raw,
  elapsedMs: number,
): StudyReport {
  const plan = study.plans[scale];
  const found = study.report(raw, plan);
  return {
    study: study.name,
    seed: study.seed,
    title: study.title,
    question: study.question,
    scale,
    published: study.published,
    measured: found.measured,
    extra: found.extra ?? [],
    plots: found.plots ?? [],
    findings: found.findings,
    skipped: found.skipped ?? [],
    options: found.options ?? { ...(plan as Record<string, unknown>) },
    elapsedMs: Math.round(elapsedMs),
  };
}

/** Runs a study at a scale: measures its plan, then reports. */
export async function runStudy<Plan, Raw>(
  study: Study<Plan, Raw>,
  scale: StudyScale,
  context: Partial<Omit<StudyContext, "scale">> = {},
): Promise<StudyReport> {
  const started = performance.now();
  const raw = await study.measure(study.plans[scale], {
    scale,
    progress: context.progress ?? (() => {}),
    signal: context.signal,
  });
  return assembleStudyReport(study, scale, raw, performance.now() - started);
}
