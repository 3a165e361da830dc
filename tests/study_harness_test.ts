import { Command } from "commander";
import { assertEquals } from "./_assert.ts";
import { assembleStudyReport, runStudy, type Study } from "../shared/study_harness.ts";
import { commandArgs } from "../shared/bench_command.ts";
import { intOption } from "../shared/cli.ts";
import { validateStudyReport } from "../shared/study.ts";

interface Plan {
  ports: number;
  workers: number[];
}

type Raw = { workers: number; ms: number }[];

/** A study with synthetic numbers: the sequential row first, then each pool size. */
const toyStudy: Study<Plan, Raw> = {
  name: "scanner",
  seed: "000_toy.txt",
  title: "Toy study",
  question: "Do more workers finish sooner?",
  plans: {
    smoke: { ports: 10, workers: [1, 2] },
    quick: { ports: 100, workers: [1, 2, 4] },
    full: { ports: 1000, workers: [1, 2, 4, 8] },
  },
  published: { columns: ["workers", "seconds"], rows: [[1, 10], [2, 5]] },
  measure: (plan, context) => {
    context.progress(`${plan.ports} ports`);
    // Synthetic: time halves with each doubling of workers.
    return Promise.resolve(plan.workers.map((workers) => ({ workers, ms: 800 / workers })));
  },
  report: (raw, plan) => {
    const best = raw.reduce((a, b) => (b.ms < a.ms ? b : a));
    return {
      measured: { columns: ["workers", "ms"], rows: raw.map((r) => [r.workers, r.ms]) },
      findings: [`${best.workers} workers were fastest over ${plan.ports} ports (${best.ms} ms).`],
      skipped: raw.length < 3 ? ["pools above 2 workers at this scale"] : [],
    };
  },
};

Deno.test("study harness: report is built from raw numbers alone, with exact values", () => {
  const raw: Raw = [{ workers: 1, ms: 90 }, { workers: 2, ms: 40 }];
  const report = assembleStudyReport(toyStudy, "smoke", raw, 1234.4);
  assertEquals(report, {
    study: "scanner",
    seed: "000_toy.txt",
    title: "Toy study",
    question: "Do more workers finish sooner?",
    scale: "smoke",
    published: { columns: ["workers", "seconds"], rows: [[1, 10], [2, 5]] },
    measured: { columns: ["workers", "ms"], rows: [[1, 90], [2, 40]] },
    extra: [],
    plots: [],
    findings: ["2 workers were fastest over 10 ports (40 ms)."],
    skipped: ["pools above 2 workers at this scale"],
    options: { ports: 10, workers: [1, 2] },
    elapsedMs: 1234,
  });
  assertEquals(validateStudyReport(report), []);
});

Deno.test("study harness: runStudy measures the scale's plan and reports progress", async () => {
  const lines: string[] = [];
  const report = await runStudy(toyStudy, "quick", { progress: (line) => lines.push(line) });
  assertEquals(lines, ["100 ports"]);
  assertEquals(report.scale, "quick");
  assertEquals(report.measured.rows, [[1, 800], [2, 400], [4, 200]]);
  assertEquals(report.findings, ["4 workers were fastest over 100 ports (200 ms)."]);
  assertEquals(report.skipped, []);
});

Deno.test("bench command: commandArgs repeats only the options given on the command line", () => {
  const program = new Command("tool").exitOverride();
  let args: string[] = [];
  program.command("bench")
    .option("--study", "", false)
    .option("--scale <scale>", "", "quick")
    .option("--runs <n>", "", intOption(1, 9), 3)
    .option("--modes <list>", "", (v: string) => v.split(","))
    .option("--no-iperf", "")
    .option("--json", "", false)
    .action((_flags, cmd: Command) => {
      args = commandArgs(cmd);
    });
  program.parse(
    ["bench", "--scale", "smoke", "--runs=2", "--no-iperf", "--json", "--modes", "a,b"],
    {
      from: "user",
    },
  );
  assertEquals(args, ["--scale", "smoke", "--runs", "2", "--modes", "a,b", "--no-iperf", "--json"]);
});
