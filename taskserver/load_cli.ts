/**
 * The `taskserver load HOST:PORT` and `taskserver load merge A.json B.json ...`
 * command lines: flags to {@linkcode LoadOptions}, progress on a TTY, Ctrl-C
 * (what was measured is printed, exit 130), text or one JSON document.
 *
 * @module
 */
import type { Command } from "commander";
import {
  addOutputOptions,
  claimStopSignals,
  intOption,
  numberOption,
  runCommand,
  writeStderr,
} from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { type LoadOptions, runLoad } from "./load.ts";
import { engineArg } from "./ffi_libc.ts";
import { parseMix, parseTarget, STUDY_PAYLOAD } from "./load_plan.ts";
import {
  buildReport,
  type LoadReport,
  loadText,
  mergeResults,
  writeLoadFiles,
} from "./load_report.ts";

/** Exit status after Ctrl-C. */
export const EXIT_INTERRUPTED = 130;

interface LoadFlags {
  connections: number;
  rate?: number;
  duration?: string;
  requests?: number;
  requestsPerConnection?: number;
  warmup: string;
  pipeline: number;
  timeout: number;
  mix: string;
  payload: string;
  expression: string;
  studyFraming: boolean;
  verify: boolean;
  workers: number;
  workerMode: string;
  engine: string;
  coCorrection: boolean;
  out?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/** Parses `10`, `10s`, `500ms`, `2m` into milliseconds (a bare number is seconds). */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  const value = m ? Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000) : NaN;
  if (!m || !Number.isFinite(value) || value > 86_400_000) {
    throw new UsageError(
      `Invalid ${option} '${text}': expected a duration such as 10, 10s, 500ms or 2m`,
    );
  }
  return Math.round(value);
}

/** The flags as {@linkcode LoadOptions}; usage errors name the flag. */
export function loadOptionsFrom(target: string, flags: LoadFlags): LoadOptions {
  const { host, port } = parseTarget(target);
  const framing = flags.studyFraming ? "raw" : "line";
  if (framing === "raw" && flags.pipeline > 1) {
    throw new UsageError("--pipeline needs line framing: the study's framing has no delimiter");
  }
  let durationMs = flags.duration === undefined
    ? null
    : parseDuration(flags.duration, "--duration");
  if (durationMs === null && flags.requests === undefined && !flags.requestsPerConnection) {
    durationMs = 10_000;
  }
  if (flags.workerMode !== "thread" && flags.workerMode !== "process") {
    throw new UsageError(`Invalid --worker-mode '${flags.workerMode}': expected thread or process`);
  }
  return {
    host,
    port,
    connections: flags.connections,
    rate: flags.rate ?? null,
    pipeline: flags.pipeline,
    warmupMs: parseDuration(flags.warmup, "--warmup"),
    durationMs,
    requests: flags.requests ?? null,
    requestsPerConnection: flags.requestsPerConnection ?? null,
    timeoutMs: flags.timeout,
    framing,
    mix: parseMix(flags.mix),
    payload: flags.payload,
    expression: flags.expression,
    verify: flags.verify,
    workers: flags.workers,
    workerMode: flags.workerMode,
    engine: engineArg(flags.engine),
  };
}

function progressLine(
  p: { elapsedMs: number; sent: number; answered: number; errors: number; p99Us: number },
  rate: number,
): string {
  const p99 = Number.isNaN(p.p99Us) || p.p99Us === 0 ? "–" : `${(p.p99Us / 1000).toFixed(2)} ms`;
  return `\r\x1b[2K${(p.elapsedMs / 1000).toFixed(1)} s | ${Math.round(rate)} answers/s | ` +
    `p99 so far ${p99} | sent ${p.sent}, answered ${p.answered}, errors ${p.errors}`;
}

async function loadCommand(target: string, flags: LoadFlags): Promise<number> {
  const options = loadOptionsFrom(target, flags);
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  // SIGINT and SIGTERM stop the run; what was measured is printed (runCommand leaves them to us).
  const release = claimStopSignals();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const showProgress = !flags.json && !flags.quiet && Deno.stderr.isTerminal();
  let last = { at: 0, answered: 0 };
  let interrupted = false;
  const code = await runCommand("taskserver", "load", { ...flags, target }, async () => {
    let report: LoadReport;
    try {
      report = await runLoad(options, {
        signal: controller.signal,
        onProgress: showProgress
          ? (p) => {
            const rate = (p.answered - last.answered) /
              Math.max(1e-3, (p.elapsedMs - last.at) / 1000);
            last = { at: p.elapsedMs, answered: p.answered };
            writeStderr(progressLine(p, rate));
          }
          : undefined,
      });
    } finally {
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
      release();
      if (showProgress) writeStderr("\r\x1b[2K");
    }
    interrupted = report.measured.interrupted;
    if (report.summary.answered === 0 && report.measured.firstError !== null && !interrupted) {
      // Nothing measured: say why (a refused connection, a timeout) and fail.
      throw new Error(report.measured.firstError);
    }
    if (flags.out) {
      const files = await writeLoadFiles(flags.out, report);
      if (!flags.quiet && !flags.json) writeStderr(`wrote ${files.join(", ")}\n`);
    }
    return { results: report, text: loadText(report, flags.coCorrection === false) };
  });
  return interrupted ? EXIT_INTERRUPTED : code;
}

/** Reads a `taskserver load --json` document (or its `results`) as a report. */
async function readReport(path: string): Promise<LoadReport> {
  let doc: unknown;
  try {
    doc = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    throw new Error(
      `Cannot read ${path}: ${error instanceof Error ? error.message : String(error)}` +
        " (expected the output of `taskserver load --json`)",
    );
  }
  const report = ((doc as { results?: unknown })?.results ?? doc) as LoadReport;
  if (!report?.measured?.latency || !report.settings) {
    throw new Error(`${path} is not a \`taskserver load --json\` document (no measured histogram)`);
  }
  return report;
}

/** Merges several `--json` results into one report (exact: histograms add bucket by bucket). */
export async function mergeFiles(paths: string[]): Promise<LoadReport> {
  const reports = await Promise.all(paths.map(readReport));
  const measured = mergeResults(reports.map((r) => r.measured));
  const first = reports[0].settings;
  const targets = [...new Set(reports.map((r) => r.settings.target))];
  const sum = (pick: (r: LoadReport) => number | null) =>
    reports.every((r) => pick(r) !== null)
      ? reports.reduce((s, r) => s + (pick(r) as number), 0)
      : null;
  return buildReport({
    ...first,
    target: targets.join(" + "),
    connections: sum((r) => r.settings.connections) ?? first.connections,
    rate: sum((r) => r.settings.rate),
    requests: sum((r) => r.settings.requests),
    workers: reports.length,
    workerMode: "merged",
  }, measured);
}

/**
 * Adds `load HOST:PORT` and `load merge FILES...` (one command, so both share
 * `--json` and `--out`) to the program; `setCode` receives the exit code.
 */
export function addLoadCommand(program: Command, setCode: (code: number) => void): void {
  const load = addOutputOptions(
    program.command("load")
      .description(
        "load generator for any server speaking the protocol: closed loop (--connections) or " +
          "open loop (--rate, latency from the schedule), HDR percentiles, timeline; " +
          "`load merge A.json B.json ...` adds up --json runs exactly",
      )
      .argument("<target>", "HOST:PORT of the server (e.g. 127.0.0.1:65432), or `merge`")
      .argument("[files...]", "with `merge`: `taskserver load --json` documents to merge exactly")
      .option("-c, --connections <n>", "connections", intOption(1, 100_000), 10)
      .option(
        "-r, --rate <n>",
        "open loop: requests per second in total, on a fixed schedule (default: closed loop)",
        numberOption(0),
      )
      .option("-d, --duration <time>", "measuring time, e.g. 10s, 500ms (default 10s)")
      .option("-n, --requests <n>", "measured requests in total", intOption(1))
      .option(
        "--requests-per-connection <n>",
        "close each connection after this many requests (1: the study's clients)",
        intOption(1),
      )
      .option("--warmup <time>", "time before measuring starts", "0")
      .option("--pipeline <n>", "requests in flight per connection", intOption(1, 1024), 1)
      .option("--timeout <ms>", "wait for a connection or an answer", intOption(1), 10_000)
      .option("--mix <list>", "choices and weights, e.g. 1:30,2:30,3:40", "3")
      .option(
        "--payload <template>",
        "text for choices 1 and 3; {n} request, {c} connection",
        STUDY_PAYLOAD,
      )
      .option("--expression <template>", "expression for choice 2", "{n}+1")
      .option(
        "--study-framing",
        "the study's benchmark request: the payload bare, no newline, one read is the answer",
        false,
      )
      .option("--verify", "count an answer differing from our own server's as an error", false)
      .option("--workers <n>", "generator workers (0: in this process)", intOption(0, 64), 0)
      .option("--worker-mode <mode>", "thread or process", "thread")
      .option(
        "--engine <engine>",
        "auto (ffi for one-request clients where it can run), ffi (libc sockets and epoll) " +
          "or deno (Deno.connect)",
        "auto",
      )
      .option("--no-co-correction", "also show latency from the actual send (uncorrected)")
      .option("--out <dir>", "write CSV, Markdown, JSON and SVG (latency over time, spectrum)"),
  );
  load.action(async (target: string, files: string[], flags: LoadFlags) => {
    if (target !== "merge") {
      if (files.length > 0) {
        throw new UsageError(`Unexpected arguments after the target: ${files.join(" ")}`);
      }
      setCode(await loadCommand(target, flags));
      return;
    }
    if (files.length === 0) {
      throw new UsageError("taskserver load merge needs the JSON documents to merge");
    }
    setCode(
      await runCommand("taskserver", "load merge", { ...flags, files }, async () => {
        const report = await mergeFiles(files);
        if (flags.out) await writeLoadFiles(flags.out, report);
        return { results: report, text: loadText(report, flags.coCorrection === false) };
      }),
    );
  });
}
