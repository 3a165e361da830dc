/**
 * `deno task lab`: reproduces the five studies in one command and writes
 * `lab-report/` (index.html, README.md, results.json, plots/).
 *
 * - `deno task lab` runs every study at the quick scale (under five minutes on 2 cores);
 *   `--smoke` is the smallest (CI), `--full` the studies' own sizes.
 * - `--only scanner,transfer` picks studies; `--from bundle` runs `dist/<tool>.js`.
 * - `deno task lab check lab-report/results.json` validates a report against its schema.
 *
 * @module
 */
import { Option } from "commander";
import {
  createProgram,
  EXIT_FAILURE,
  EXIT_OK,
  exitCodeAfter,
  jsonDocument,
  runMain,
  watchStopSignals,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { STUDY_NAMES, type StudyName, type StudyScale } from "../shared/study.ts";
import { runLab, validateLabResults } from "./lab_core.ts";

function seconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

function parseOnly(text: string): StudyName[] {
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const name of names) {
    if (!(STUDY_NAMES as readonly string[]).includes(name)) {
      throw new UsageError(
        `Invalid --only "${name}": expected a comma list of ${STUDY_NAMES.join(", ")}`,
      );
    }
  }
  if (names.length === 0) throw new UsageError("Invalid --only: no study named");
  return names as StudyName[];
}

/** Where the tools are: the repository root from source, the bundle's directory from a bundle. */
function defaultFrom(): "source" | "bundle" | "binary" {
  if (Deno.build.standalone) return "binary";
  return import.meta.url.endsWith(".js") ? "bundle" : "source";
}

function rootFor(from: "source" | "bundle" | "binary"): string {
  // A compiled lab sits next to the compiled tools, a bundled lab next to the bundles.
  if (from === "binary") return new URL(".", `file://${Deno.execPath()}`).pathname;
  const here = new URL(".", import.meta.url);
  if (from === "bundle") {
    return defaultFrom() === "bundle" ? here.pathname : new URL("../dist/", here).pathname;
  }
  return new URL("../", here).pathname;
}

/** Parses the command line and runs the lab; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram(
    "lab",
    "Reproduce the five studies and write a report (lab-report/index.html, README.md, results.json)",
  );
  let code = EXIT_OK;
  program
    .option("--smoke", "smallest scale (CI; under two minutes)", false)
    .option(
      "--full",
      "the studies' full sizes (65535 ports, 100 clients at 3 s, 1 GB files)",
      false,
    )
    .addOption(
      new Option("--scale <scale>", "smoke, quick or full").choices(["smoke", "quick", "full"])
        .default("quick"),
    )
    .option(
      "--only <studies>",
      `comma list of studies (${STUDY_NAMES.join(",")})`,
      STUDY_NAMES.join(","),
    )
    .option("--out <dir>", "output directory", "lab-report")
    .addOption(
      new Option("--from <where>", "run the tools from source, dist/ bundles or dist/ binaries")
        .choices(["source", "bundle", "binary"]).default(defaultFrom()),
    )
    .option("--timeout <seconds>", "kill a study that takes longer (default: per scale)")
    .option("--json", "print results.json on stdout as well", false)
    .option("-q, --quiet", "no progress on stderr", false)
    .action(async (opts) => {
      if (opts.smoke && opts.full) throw new UsageError("--smoke and --full exclude each other");
      const scale: StudyScale = opts.smoke ? "smoke" : opts.full ? "full" : opts.scale;
      const only = parseOnly(opts.only);
      let timeoutMs: number | undefined;
      if (opts.timeout !== undefined) {
        const n = Number(opts.timeout);
        if (!Number.isFinite(n) || n <= 0) {
          throw new UsageError(`Invalid --timeout "${opts.timeout}": expected seconds > 0`);
        }
        timeoutMs = n * 1000;
      }
      // SIGINT/SIGTERM: the studies so far are reported, then exit 130/143.
      const stop = watchStopSignals();
      const started = performance.now();
      const log = (text: string) => {
        if (!opts.quiet) writeStderr(text + "\n");
      };
      try {
        const results = await runLab({
          scale,
          only,
          from: opts.from,
          root: rootFor(opts.from),
          out: opts.out,
          timeoutMs,
          signal: stop.abort,
          onEvent: (event) => {
            const elapsed = seconds(performance.now() - started);
            if (event.type === "start") {
              log(
                `[${event.index + 1}/${event.total}] ${event.study}: running the ${scale} study ` +
                  `(${elapsed} elapsed, about ${seconds(event.leftMs)} left)`,
              );
            } else if (event.type === "line") {
              log(`  ${event.study} | ${event.line}`);
            } else {
              log(
                event.ok
                  ? `  ${event.study}: done in ${seconds(event.ms)}`
                  : `  ${event.study}: FAILED after ${seconds(event.ms)}: ${event.error}`,
              );
            }
          },
        });
        log(
          `lab: ${results.studies.length} of ${only.length} studies in ${
            seconds(results.elapsedMs)
          }; report in ${opts.out}/index.html (also README.md, results.json)`,
        );
        if (opts.json) writeStdout(JSON.stringify(results, null, 2) + "\n");
        code = exitCodeAfter(stop.signal, results.failures.length > 0 ? EXIT_FAILURE : EXIT_OK);
      } finally {
        stop.dispose();
      }
    });
  program
    .command("check <file>")
    .description("validate a results.json against the lab's schema")
    .option("--expect <studies>", "studies that must be present", STUDY_NAMES.join(","))
    .option("--json", "print the check as one JSON document", false)
    .action(async (file: string, opts) => {
      const started = performance.now();
      let value: unknown;
      try {
        value = JSON.parse(await Deno.readTextFile(file));
      } catch (error) {
        throw new Error(`Cannot read ${file}: ${(error as Error).message}`);
      }
      const problems = validateLabResults(value, parseOnly(opts.expect));
      if (opts.json) {
        writeStdout(
          JSON.stringify(
            jsonDocument(
              "lab",
              "check",
              { file },
              { ok: problems.length === 0, problems },
              performance.now() - started,
            ),
          ) + "\n",
        );
      } else if (problems.length === 0) {
        writeStdout(`${file}: valid lab results\n`);
      } else {
        writeStdout(
          `${file}: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}\n`).join("")}`,
        );
      }
      code = problems.length === 0 ? EXIT_OK : EXIT_FAILURE;
    });
  await program.parseAsync(args, { from: "user" });
  return code;
}

if (import.meta.main) await runMain("lab", () => main(Deno.args));
