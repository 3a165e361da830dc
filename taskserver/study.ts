/**
 * The task-server study (seed 003) as a `Study` of `shared/study_harness.ts`:
 * its plans and published table (`study_plans.ts`), its measurements
 * (`bench.ts`, loaded only when it runs) and its pure report
 * (`study_report.ts`).
 *
 * @module
 */
import type { Study } from "../shared/study_harness.ts";
import { PLANS, PUBLISHED, type StudyPlan } from "./study_plans.ts";
import { report, type StudyRaw } from "./study_report.ts";

/** The study, measuring with `taskserver serve` from `entry` (default: the running program). */
export function taskserverStudy(entry?: string): Study<StudyPlan, StudyRaw> {
  return {
    name: "taskserver",
    seed: "003_fc16dd8ea9eb56a5.txt",
    title: "Task server: one client at a time, a process or a thread per client",
    question:
      "How long do N concurrent clients take against a server that answers after 3 s, when the " +
      "server handles one client at a time, forks a process per client, or starts a thread per client?",
    plans: PLANS,
    published: PUBLISHED,
    measure: async (plan, context) =>
      await (await import("./bench.ts")).measureStudy(plan, context, entry),
    report,
  };
}
