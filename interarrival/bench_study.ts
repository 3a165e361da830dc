/**
 * The measuring half of `interarrival bench --study`: re-runs the study's three
 * attempts and the accuracy, throughput and precision runs of a plan, and
 * returns raw numbers (study_report.ts turns them into the report).
 *
 * @module
 */
import type { StudyContext } from "../shared/study_harness.ts";
import type { Mode } from "../shared/mode.ts";
import { roundMs } from "../shared/clock.ts";
import { summarize } from "../shared/stats.ts";
import { parseDistribution } from "./distributions.ts";
import { measureReception } from "./server.ts";
import { runClient } from "./client.ts";
import {
  type AccuracyRow,
  accuracyRun,
  type BenchHooks,
  cpuPressure,
  pythonAvailable,
  type ThroughputRow,
  throughputRun,
} from "./bench.ts";
import { type KsRow, ksRun, udpRate } from "./bench_precision.ts";
import { scaledParam, type Scenario, SCENARIOS, type StudyPlan } from "./study_plans.ts";
import type { ScenarioRaw, StudyRaw } from "./study_report.ts";

async function runScenario(
  scenario: Scenario,
  scale: number,
  perConnection: boolean,
  hooks: BenchHooks,
): Promise<ScenarioRaw> {
  const { sent: clients, received: stopped } = await measureReception(
    {
      mode: scenario.mode,
      perConnection: perConnection && (scenario.mode === "thread" || scenario.mode === "process"),
      entry: hooks.entry,
    },
    scenario.clients.reduce((sum, c) => sum + c.workers, 0),
    // The study launched its clients at the same time.
    (port) =>
      Promise.all(
        scenario.clients.map((c, i) =>
          runClient({
            host: "127.0.0.1",
            port,
            workers: c.workers,
            intervals: c.intervals,
            dist: parseDistribution(c.dist, [scaledParam(c, scale)]),
            seed: 100 + i,
            entry: hooks.entry,
            signal: hooks.signal,
            connectTimeoutMs: 120_000,
          })
        ),
      ),
  );
  const sessions = stopped.connections
    .filter((c) => c.closedAt !== null)
    .map((c) => (c.closedAt as number) - c.acceptedAt);
  return {
    connectionMs: stopped.summary.averageConnectionInterarrivalMs,
    dataMs: stopped.summary.averageDataInterarrivalMs,
    messages: stopped.summary.messages,
    sent: clients.reduce((sum, c) => sum + c.overall.messages, 0),
    sessionMs: roundMs(summarize(sessions).mean),
  };
}

/** Runs a plan's measurements (progress through `context`); raw numbers only. */
export async function measureStudy(
  plan: StudyPlan,
  context: Pick<StudyContext, "progress" | "signal">,
  hooks: BenchHooks = {},
): Promise<StudyRaw> {
  const log = context.progress;
  const run: BenchHooks = { ...hooks, signal: context.signal ?? hooks.signal };
  const python = await pythonAvailable();
  const scenarios: ScenarioRaw[] = [];
  for (const scenario of SCENARIOS) {
    log(`study attempt ${scenario.attempt} (time scale ${plan.timeScale})`);
    scenarios.push(await runScenario(scenario, plan.timeScale, plan.perConnection, run));
  }
  const accuracy: AccuracyRow[] = [];
  log(`accuracy: exponential 10 ms mean, ${plan.accuracyEvents} events`);
  accuracy.push(await accuracyRun("interarrival", 10, plan.accuracyEvents, 42, run));
  if (python) {
    accuracy.push(await accuracyRun("python (study style)", 10, plan.accuracyEvents, 42, run));
  }
  accuracy.push(await accuracyRun("interarrival", 1, plan.accuracyEvents, 42, run));
  const throughput: ThroughputRow[] = [];
  for (const mode of ["async", "thread"] as Mode[]) {
    log(`throughput: ${plan.workers} × ${plan.rate}/s × ${plan.seconds} s, ${mode} server`);
    throughput.push(
      await throughputRun(
        "interarrival",
        mode,
        plan.workers,
        plan.rate,
        plan.seconds,
        plan.threads,
        run,
      ),
    );
  }
  if (python) {
    throughput.push(
      await throughputRun(
        "python (study style)",
        "async",
        plan.workers,
        plan.rate,
        plan.seconds,
        1,
        run,
      ),
    );
  }
  log(`precision: UDP ${plan.udpRate}/s × ${plan.udpSeconds} s; KS at a 1 ms mean`);
  const udp = [await udpRate(plan.udpRate, plan.udpSeconds, 64, run)];
  const ks: KsRow[] = [];
  for (const protocol of ["udp", "tcp"] as const) {
    ks.push(await ksRun(protocol, 1, plan.accuracyEvents, run));
  }
  return { scenarios, accuracy, throughput, udp, ks, python, pressure: cpuPressure() };
}
