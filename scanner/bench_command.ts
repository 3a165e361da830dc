/**
 * The `scanner bench` command line (options, validation, printing); the
 * measurements live in `bench.ts`.
 *
 * @module
 */
import type { Command } from "commander";
import {
  addOutputOptions,
  EXIT_FAILURE,
  EXIT_OK,
  intOption,
  jsonDocument,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import type { StudyScale } from "../shared/study.ts";
// The bench's modules (tables, plots, the lab) load on first use, so a plain scan
// does not pay for them at start-up.
const loadBench = () => import("./bench.ts");
const loadReport = () => import("../shared/report.ts");
const loadStudy = () => import("../shared/study.ts");

interface BenchFlags {
  study: boolean;
  scale: string;
  runs?: number;
  lab: boolean;
  compare?: string;
  targets: boolean;
  out?: string;
  json: boolean;
  verbose: boolean;
  quiet: boolean;
}

async function scaleOf(text: string): Promise<StudyScale> {
  const { parseScale } = await loadStudy();
  return parseScale(text);
}

/** Re-runs this bench inside a fresh private namespace; returns its exit code. */
async function runInLab(args: string[]): Promise<number> {
  const { labCommand } = await loadBench();
  const command = labCommand(["bench", ...args]);
  const child = new Deno.Command(command.command, {
    args: command.args,
    env: command.env,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  return (await child.status).code;
}

async function bench(flags: BenchFlags, args: string[]): Promise<number> {
  const started = performance.now();
  const scale = await scaleOf(flags.scale);
  const {
    benchPlot,
    extraTables,
    LAB_ENV,
    labUnavailableReason,
    measuredTable,
    planFor,
    publishedPlot,
    publishedTable,
    runBench,
    runStudy,
  } = await loadBench();
  const { renderTable, studyText, writeReport, writeStudyReport } = await loadReport();
  if (flags.compare !== undefined && flags.compare !== "nmap") {
    throw new UsageError(`Invalid --compare '${flags.compare}': only 'nmap' is supported`);
  }
  if (flags.targets && flags.compare !== "nmap") {
    throw new UsageError("--targets measures the speed targets against nmap: add --compare nmap");
  }
  const log = (message: string) => {
    if (!flags.quiet) writeStderr(`bench: ${message}\n`);
  };
  const inLab = Deno.env.get(LAB_ENV) === "1";
  const reason = await labUnavailableReason();
  if (!inLab && reason === null) return await runInLab(args);

  if (flags.study) {
    const report = await runStudy(scale, { onProgress: log });
    if (flags.out) log(`wrote ${(await writeStudyReport(flags.out, report)).join(", ")}`);
    if (flags.json) {
      writeStdout(
        JSON.stringify(
          jsonDocument(
            "scanner",
            "bench",
            { study: true, scale },
            report,
            performance.now() - started,
          ),
        ) + "\n",
      );
    } else {
      writeStdout(studyText(report));
    }
    return EXIT_OK;
  }
  if (reason !== null) {
    writeStderr(`scanner: error: bench needs the lab namespace: ${reason}\n`);
    return EXIT_FAILURE;
  }
  const plan = planFor(scale);
  if (flags.runs !== undefined) plan.runs = flags.runs;
  const result = await runBench({
    plan,
    timeoutMs: 500,
    compareNmap: flags.compare === "nmap",
    speedTargets: flags.compare === "nmap",
    grid: !flags.targets,
    onProgress: log,
  });
  const tables = flags.targets
    ? extraTables(result)
    : [publishedTable(), measuredTable(result, plan), ...extraTables(result)];
  const options = {
    scale,
    runs: plan.runs,
    ports: plan.ports,
    rows: plan.rows.map((r) => r.label),
    compare: flags.compare ?? null,
    targets_only: flags.targets,
  };
  if (flags.out) {
    const written = await writeReport(flags.out, {
      name: "scanner-bench",
      title: "scanner bench: the port-scanning study on this machine",
      notes: [
        "Lab target in a private network namespace: 28 listening ports, 4 ports dropped by nftables (filtered), the rest closed.",
        ...result.skipped,
      ],
      tables,
      plots: [benchPlot(result), publishedPlot()],
      json: { options, ...result },
    });
    log(`wrote ${written.join(", ")}`);
  }
  if (flags.json) {
    writeStdout(
      JSON.stringify(
        jsonDocument("scanner", "bench", options, result, performance.now() - started),
      ) + "\n",
    );
  } else {
    writeStdout(tables.map(renderTable).join("\n\n") + "\n");
  }
  return EXIT_OK;
}

/** Adds `bench` to the program; `setExit` receives its exit code. */
export function addBenchCommand(program: Command, setExit: (code: number) => void): void {
  const command = program
    .command("bench")
    .description(
      "reproduce the port-scanning study's grid against a lab target in a private network namespace (needs root)",
    )
    .option(
      "--study",
      "run the seed study and print its StudyReport (with --json, for the lab)",
      false,
    )
    .option(
      "--scale <scale>",
      "smoke (≤ 20 s), quick (≤ 45 s) or full (the study's sizes)",
      "quick",
    )
    .option(
      "--runs <n>",
      "runs per cell (medians are reported; default: 1, or 3 at full scale)",
      intOption(1, 50),
    )
    .option("--lab", "build the target in a private namespace (always on; needs root)", true)
    .option("--compare <tool>", "add timings of another scanner: nmap")
    .option(
      "--targets",
      "with --compare nmap: only the speed targets and the engines table (no study grid)",
      false,
    )
    .option("--out <dir>", "write Markdown, CSV, JSON and SVG files to DIR");
  addOutputOptions(command).action(async (flags: BenchFlags, cmd: Command) => {
    setExit(await bench(flags, benchArgs(cmd)));
  });
}

/** The bench's own arguments, to pass on when re-running inside the namespace. */
function benchArgs(cmd: Command): string[] {
  const flags = cmd.opts() as BenchFlags;
  const args: string[] = [];
  if (flags.study) args.push("--study");
  args.push("--scale", flags.scale);
  if (flags.runs !== undefined) args.push("--runs", String(flags.runs));
  if (flags.compare !== undefined) args.push("--compare", flags.compare);
  if (flags.targets) args.push("--targets");
  if (flags.out !== undefined) args.push("--out", flags.out);
  if (flags.json) args.push("--json");
  if (flags.verbose) args.push("--verbose");
  if (flags.quiet) args.push("--quiet");
  return args;
}
