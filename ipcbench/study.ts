/**
 * The ipcbench study (`bench --study` and `ipcbench study`) as a
 * {@linkcode Study} of shared/study_harness.ts: the plans and published table
 * (study_plans.ts), `measure` here (the study's two cases as it ran them, its
 * Python program, the transport matrix and the streams), and the pure report
 * (study_report.ts).
 *
 * @module
 */
import type { Study } from "../shared/study_harness.ts";
import { measureCase } from "./measure.ts";
import type { Pin } from "./system.ts";
import { runPythonAnchor } from "./anchor.ts";
import { type BenchOptions, runBench } from "./bench.ts";
import { runStreams } from "./stream.ts";
import { publishedTable, STUDY_PLANS, type StudyScalePlan } from "./study_plans.ts";
import { reportStudy, type StudyCaseRun, type StudyRaw } from "./study_report.ts";

/** Options for {@linkcode runStudyCases}. */
export interface StudyCaseOptions {
  roundTrips: number;
  repeats: number;
  pin: Pin;
  timeoutMs: number;
  entry?: string | URL;
  onProgress?: (index: number, total: number, label: string) => void;
}

/** Runs exactly the study's two cases, alternating as it did, `repeats` times. */
export async function runStudyCases(options: StudyCaseOptions): Promise<StudyCaseRun[]> {
  const runs: StudyCaseRun[] = [];
  const cases = [["High Level", "pipes"], ["Low Level", "tcp"]] as const;
  for (let run = 1; run <= options.repeats; run++) {
    for (const [name, transport] of cases) {
      options.onProgress?.(runs.length, options.repeats * 2, `${name} ${run}`);
      const result = await measureCase({
        transport,
        size: 4,
        roundTrips: options.roundTrips,
        // The study's only warm-up is its first message (1 → 2) before the clock starts.
        warmup: 1,
        runs: 1,
        pin: options.pin,
        timeoutMs: options.timeoutMs,
        entry: options.entry,
      });
      runs.push({ run, case: name, transport, result });
    }
  }
  return runs;
}

/** How `measure` is run beyond its plan. */
export interface StudyMeasureOptions {
  entry?: string | URL;
  timeoutMs?: number;
  onProgress?: BenchOptions["onProgress"];
}

/** The study, measuring with `options` (the worker entry, timeouts, progress). */
export function ipcbenchStudy(
  options: StudyMeasureOptions = {},
): Study<StudyScalePlan, StudyRaw> {
  return {
    name: "ipcbench",
    seed: "002_3149a852935075d4.txt",
    title: "Message passing between processes: a queue vs. a socket",
    question:
      "How many times per second can two processes pass a counter back and forth, through a " +
      "high-level queue versus a low-level socket?",
    plans: STUDY_PLANS,
    published: publishedTable(),
    measure: (plan, context) => measureStudy(plan, context.scale, options),
    report: reportStudy,
  };
}

async function measureStudy(
  plan: StudyScalePlan,
  scale: StudyRaw["scale"],
  options: StudyMeasureOptions,
): Promise<StudyRaw> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const runs = await runStudyCases({
    roundTrips: plan.studyRoundTrips,
    repeats: plan.repeats,
    pin: "none",
    timeoutMs,
    entry: options.entry,
    onProgress: options.onProgress,
  });
  const python = await runPythonAnchor(plan.pythonRoundTrips, plan.repeats, 120_000);
  const matrix = await runBench({
    ...plan.matrix,
    timeoutMs,
    entry: options.entry,
    onProgress: options.onProgress
      ? (i, n, label) => options.onProgress!(runs.length + i, runs.length + n, label)
      : undefined,
  });
  const streams = await runStreams({ ...plan.stream, timeoutMs, entry: options.entry });
  return { scale, runs, python, matrix, streams };
}
