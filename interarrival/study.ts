/**
 * The interarrival study as a `Study` of shared/study_harness.ts: plans and
 * the published table (study_plans.ts), measurements (bench_study.ts) and the
 * pure report (study_report.ts).
 *
 * @module
 */
import type { Study } from "../shared/study_harness.ts";
import { measureStudy } from "./bench_study.ts";
import { PLANS, PUBLISHED, SEED_FILE, type StudyPlan } from "./study_plans.ts";
import { type StudyRaw, studyReport } from "./study_report.ts";

/** The study `bench --study` runs for the lab. */
export const interarrivalStudy: Study<StudyPlan, StudyRaw> = {
  name: "interarrival",
  seed: SEED_FILE,
  title: "Inter-arrival times: iterative vs concurrent servers, and a precise traffic generator",
  question:
    "How do connection and data inter-arrival times measured by a stream server depend on its " +
    "concurrency mode, and how closely do the client's generated inter-event times arrive?",
  plans: PLANS,
  published: PUBLISHED,
  measure: (plan, context) => measureStudy(plan, context),
  report: studyReport,
};
