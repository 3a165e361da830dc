/**
 * `scanner bench`, on the shared bench command (shared/bench_command.ts, which
 * owns `--study`, `--scale`, `--out`, `--json`, progress and errors): the
 * scanner's own options, the re-run inside a private network namespace, and the
 * tables it prints. The measurements live in `bench.ts`.
 *
 * @module
 */
import type { Command } from "commander";
import { addBenchCommand as addSharedBench, type BenchFlags } from "../shared/bench_command.ts";
import { exitCodeAfter, intOption, watchStopSignals, writeStderr } from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
// The bench's modules (tables, plots, the lab) load on first use, so a plain scan
// does not pay for them at start-up.
const loadBench = () => import("./bench.ts");
const loadStudy = () => import("./study.ts");

interface ScannerBenchFlags extends BenchFlags {
  runs?: number;
  lab: boolean;
  compare?: string;
  targets: boolean;
}

/**
 * Re-runs this bench inside a fresh private namespace; returns its exit code.
 * SIGINT/SIGTERM go on to it (it prints what it measured and exits 130/143).
 */
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
  const forward = (signal: "SIGINT" | "SIGTERM") => () => {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  };
  const onInt = forward("SIGINT");
  const onTerm = forward("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  try {
    return (await child.status).code;
  } finally {
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
  }
}

function checkFlags(flags: ScannerBenchFlags): void {
  if (flags.compare !== undefined && flags.compare !== "nmap") {
    throw new UsageError(`Invalid --compare '${flags.compare}': only 'nmap' is supported`);
  }
  if (flags.targets && flags.compare !== "nmap") {
    throw new UsageError("--targets measures the speed targets against nmap: add --compare nmap");
  }
}

/** Adds `bench` to the program; `setExit` receives its exit code. */
export function addBenchCommand(program: Command, setExit: (code: number) => void): void {
  addSharedBench<ScannerBenchFlags>(program, {
    tool: "scanner",
    description:
      "reproduce the port-scanning study's grid against a lab target in a private network namespace (needs root)",
    scaleHelp: "smoke (≤ 20 s), quick (≤ 45 s) or full (the study's sizes)",
    progressPrefix: "bench: ",
    options: (command) =>
      command
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
        ),
    relaunch: async (flags, args) => {
      checkFlags(flags);
      const { LAB_ENV, labUnavailableReason } = await loadBench();
      if (Deno.env.get(LAB_ENV) === "1") return null;
      if ((await labUnavailableReason()) !== null) return null;
      // The bench in the namespace printed everything (its JSON document included):
      // exit with its status, adding nothing.
      Deno.exit(await runInLab(args));
    },
    study: async (context) =>
      (await loadBench()).runStudy(context.scale, {
        onProgress: context.progress,
      }),
    bench: async (context, flags) => {
      const [bench, study] = await Promise.all([loadBench(), loadStudy()]);
      const reason = await bench.labUnavailableReason();
      if (reason !== null) throw new Error(`bench needs the lab namespace: ${reason}`);
      const plan = study.planFor(context.scale);
      if (flags.runs !== undefined) plan.runs = flags.runs;
      // SIGINT/SIGTERM: stop, print what was measured, exit 130/143.
      const stop = watchStopSignals();
      let result;
      try {
        result = await bench.runBench({
          plan,
          timeoutMs: 500,
          compareNmap: flags.compare === "nmap",
          speedTargets: flags.compare === "nmap",
          grid: !flags.targets,
          onProgress: context.progress,
          signal: stop.abort,
        });
      } finally {
        stop.dispose();
      }
      if (stop.signal) {
        writeStderr(`scanner: bench interrupted by ${stop.signal}: the results are partial\n`);
      }
      const tables = flags.targets
        ? study.extraTables(result)
        : [study.publishedTable(), study.measuredTable(result, plan), ...study.extraTables(result)];
      const options = {
        scale: context.scale,
        runs: plan.runs,
        ports: plan.ports,
        rows: plan.rows.map((r) => r.label),
        compare: flags.compare ?? null,
        targets_only: flags.targets,
      };
      const { renderTable } = await import("../shared/report.ts");
      return {
        results: result,
        exitCode: stop.signal ? exitCodeAfter(stop.signal) : undefined,
        options,
        text: tables.map(renderTable).join("\n\n") + "\n",
        report: {
          name: "scanner-bench",
          title: "scanner bench: the port-scanning study on this machine",
          notes: [
            "Lab target in a private network namespace: 28 listening ports, 4 ports dropped by nftables (filtered), the rest closed.",
            ...result.skipped,
          ],
          tables,
          plots: flags.targets ? [] : [study.benchPlot(result), study.publishedPlot()],
          json: { options, ...result },
        },
      };
    },
  }, setExit);
}
