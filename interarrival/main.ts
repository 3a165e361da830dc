/**
 * `interarrival`: traffic generator and inter-arrival-time server.
 *
 * - `serve`: stream server that stores connection and data inter-arrival times.
 * - `client`: multithreaded generator of timestamp messages with drawn gaps.
 * - `check`: runs both and tests the measured gaps against the distribution.
 * - `bench`: timing accuracy and throughput (and `--study` for the lab).
 *
 * @module
 */
import { type Command, Option } from "commander";
import {
  addOutputOptions,
  addServerLimitOptions,
  createProgram,
  EXIT_FAILURE,
  EXIT_OK,
  exitCodeAfter,
  intOption,
  jsonDocument,
  numberOption,
  runMain,
  toolArgs,
  warn,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { serveRegistry } from "../shared/registry.ts";
import { registry } from "./registry.ts";
import { parseMode } from "../shared/mode.ts";
import { TaskError, UsageError } from "../shared/errors.ts";
import { renderTable, studyText, writeReport, writeStudyReport } from "../shared/report.ts";
import { parseScale } from "../shared/study.ts";
import { DISTRIBUTIONS, parseDistribution, randomSeed } from "./distributions.ts";
import { DEFAULT_MAX_LINE, DEFAULT_PORT, formatSentence } from "./protocol.ts";
import { type ReceiverSummary, samplesCsv, startReceiver, writeFileAtomic } from "./server.ts";
import { type ClientResult, runClient } from "./client.ts";
import { checkReport, runCheck } from "./check.ts";
import { benchReport, runBench, runStudy } from "./bench.ts";

const TOOL = "interarrival";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function paramList(values: string[]): number[] {
  return values.map((text) => {
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n)) {
      throw new UsageError(`Invalid --param '${text}': expected a number`);
    }
    return n;
  });
}

function distFrom(options: { dist: string; param: string[] }) {
  return parseDistribution(options.dist, paramList(options.param));
}

/** Unwraps a runner TaskError so the user sees `Cannot connect to ...`, not the task input. */
function unwrapTask(error: unknown): never {
  if (error instanceof TaskError && error.cause instanceof Error) throw error.cause;
  throw error;
}

function fixed(ms: number): string {
  return Number.isFinite(ms) ? ms.toFixed(3) : "–";
}

function summaryTable(summary: ReceiverSummary): string {
  const row = (name: string, s: ReceiverSummary["dataInterarrival"]) => [
    name,
    s.count,
    fixed(s.mean),
    fixed(s.stddev),
    fixed(s.min),
    fixed(s.p50),
    fixed(s.p95),
    fixed(s.p99),
    fixed(s.max),
  ];
  return renderTable({
    columns: ["inter-arrival (ms)", "count", "mean", "stddev", "min", "p50", "p95", "p99", "max"],
    rows: [
      row("connection", summary.connectionInterarrival),
      row("data", summary.dataInterarrival),
    ],
  });
}

function addServeCommand(program: Command, exit: { code: number }): void {
  const command = program
    .command("serve")
    .description("stream server that stores connection and data inter-arrival times")
    .option("-a, --address <host>", "address to listen on (0.0.0.0: all interfaces)", "0.0.0.0")
    .option("--host <host>", "same as --address")
    .option("-p, --port <n>", "TCP port (0 picks a free one)", intOption(0, 65535), DEFAULT_PORT)
    .option(
      "--concurrency-mode <mode>",
      "the study's modes: iter | thr | proc (a thread or process per connection)",
    )
    .option("-m, --mode <mode>", "sequential | async | thread | process", "async")
    .option("--workers <n>", "thread/process pool size", intOption(1, 256), 2)
    .option("--per-connection", "thread/process: a worker or child per connection", false)
    .option("--duration <s>", "stop after this many seconds", numberOption(0))
    .option("--connections <n>", "stop after this many connections have closed", intOption(1))
    .option("--out <file>", "write every sample to FILE (.csv, or .json)")
    .option(
      "--max-line <bytes>",
      "longest message; longer closes the connection",
      intOption(1, 1 << 30),
      DEFAULT_MAX_LINE,
    )
    .option("--idle-timeout <s>", "close a connection silent this long", numberOption(0), 60)
    .option(
      "--grace <s>",
      "time open connections get when stopping",
      numberOption(0, 3600, true),
      1,
    );
  addOutputOptions(addServerLimitOptions(command)).action(async (opts) => {
    const started = performance.now();
    const mode = opts.concurrencyMode !== undefined
      ? parseMode(opts.concurrencyMode, "--concurrency-mode")
      : parseMode(opts.mode);
    const hostname = opts.host ?? opts.address;
    const quiet = opts.quiet;
    const log = (text: string) => {
      if (!quiet) writeStderr(text + "\n");
    };
    const receiver = await startReceiver(
      {
        hostname,
        port: opts.port,
        mode,
        workers: opts.workers,
        // The study's thr and proc spawned a worker per client: --concurrency-mode keeps that.
        perConnection: opts.perConnection ||
          (opts.concurrencyMode !== undefined && (mode === "thread" || mode === "process")),
        verbose: opts.verbose,
        maxLine: opts.maxLine,
        idleTimeoutMs: opts.idleTimeout * 1000,
        graceMs: opts.grace * 1000,
        backlog: opts.backlog,
        maxConnections: opts.maxConnections,
      },
      opts.verbose
        ? {
          onMessage: (text, remote) => writeStderr(formatSentence(text, remote) + "\n"),
          onOpen: (remote, where) => writeStderr(`[+] New connection from ${remote} (${where})\n`),
          onClose: (remote, reason) =>
            writeStderr(`[x] Connection closed for ${remote} (${reason})\n`),
        }
        : {},
    );
    log(
      `The ${mode} server is ready to receive on ${receiver.hostname}:${receiver.port} ` +
        `(PID ${Deno.pid})`,
    );
    let stopReason = "";
    await new Promise<void>((resolve) => {
      const stop = (why: string) => {
        if (stopReason) return;
        stopReason = why;
        resolve();
      };
      const onSigint = () => stop("SIGINT");
      const onSigterm = () => stop("SIGTERM");
      Deno.addSignalListener("SIGINT", onSigint);
      Deno.addSignalListener("SIGTERM", onSigterm);
      let timer: ReturnType<typeof setTimeout> | undefined;
      if (opts.duration !== undefined) {
        timer = setTimeout(() => stop(`--duration ${opts.duration}`), opts.duration * 1000);
      }
      if (opts.connections !== undefined) {
        receiver.collector.whenClosed(opts.connections).then(() =>
          stop(`--connections ${opts.connections}`)
        );
      }
      const cleanup = () => {
        Deno.removeSignalListener("SIGINT", onSigint);
        Deno.removeSignalListener("SIGTERM", onSigterm);
        if (timer !== undefined) clearTimeout(timer);
      };
      const original = resolve;
      resolve = () => {
        cleanup();
        original();
      };
    });
    const result = await receiver.stop();
    // Stopped by a signal: everything is still printed and written, then 130 or 143.
    if (stopReason === "SIGINT" || stopReason === "SIGTERM") exit.code = exitCodeAfter(stopReason);
    const summary = result.summary;
    if (opts.out) {
      const text = /\.json$/i.test(opts.out)
        ? JSON.stringify({ summary, connections: result.connections }, null, 1) + "\n"
        : samplesCsv(result.connections);
      await writeFileAtomic(opts.out, text);
      log(`wrote ${opts.out}`);
    }
    const options = { address: hostname, port: receiver.port, mode, workers: opts.workers };
    if (opts.json) {
      const doc = jsonDocument(
        TOOL,
        "serve",
        options,
        { ...summary, stoppedBy: stopReason },
        performance.now() - started,
      );
      writeStdout(JSON.stringify(doc) + "\n");
      return;
    }
    const lines = [
      `The server is terminating (${stopReason})`,
      `Average connection inter-arrival time: ${fixed(summary.averageConnectionInterarrivalMs)} ms`,
      `Average data inter-arrival time: ${fixed(summary.averageDataInterarrivalMs)} ms`,
      `${summary.connections} connections, ${summary.messages} messages, ${summary.bytes} bytes` +
      (summary.invalidUtf8 ? `, ${summary.invalidUtf8} not valid UTF-8` : "") +
      (summary.unterminated ? `, ${summary.unterminated} ended without a newline` : ""),
      summaryTable(summary),
    ];
    if (summary.note) lines.push(`Note: ${summary.note}`);
    writeStdout(lines.join("\n") + "\n");
  });
}

function addClientCommand(program: Command): void {
  const names = Object.entries(DISTRIBUTIONS)
    .map(([name, info]) => `${info.aliases[0]}=${name}(${info.params.join(", ")})`)
    .join("; ");
  const command = program
    .command("client")
    .description(
      "multithreaded traffic generator: each worker sends timestamps over its own connection",
    )
    .option("-w, --workers <n>", "workers (each its own connection)", intOption(1, 10_000), 1)
    .option(
      "-n, --intervals <n>",
      "inter-event intervals per worker (sends n+1 messages)",
      intOption(0, 100_000_000),
      10,
    )
    .option("-d, --dist <name>", `distribution: ${names}`, "e")
    .option("-p, --param <x>", "distribution parameter (repeat for two)", collect, [] as string[])
    .requiredOption("-s, --server <host>", "server address (required)")
    .option("-P, --port <n>", "server TCP port", intOption(1, 65535), DEFAULT_PORT)
    .option(
      "--seed <n>",
      "seed: every worker's sequence is reproducible",
      intOption(0, 0xffff_ffff),
    )
    .option(
      "--threads <n>",
      "Web Workers to spread the workers over (default: one each)",
      intOption(1, 10_000),
    )
    .option("--connect-timeout <s>", "connect and greeting timeout", numberOption(0), 10);
  addOutputOptions(command).action(async (opts) => {
    const dist = distFrom(opts);
    const seed = opts.seed ?? randomSeed();
    if (!opts.quiet && !opts.json) {
      writeStderr(
        `Starting ${opts.workers} workers connecting to ${opts.server}:${opts.port}...\n`,
      );
    }
    const result = await runClient({
      host: opts.server,
      port: opts.port,
      workers: opts.workers,
      intervals: opts.intervals,
      dist,
      seed,
      verbose: opts.verbose,
      threads: opts.threads,
      connectTimeoutMs: opts.connectTimeout * 1000,
    }).catch(unwrapTask);
    printClient(result, opts);
  });
}

function clientTable(result: ClientResult): string {
  const row = (name: string | number, t: ClientResult["overall"]) => [
    name,
    t.messages,
    fixed(t.requestedMeanMs),
    fixed(t.achievedMeanMs),
    `${(t.meanRelativeError * 100).toFixed(3)}%`,
    fixed(t.error.mean),
    fixed(t.error.p50),
    fixed(t.error.p99),
    fixed(t.error.max),
  ];
  return renderTable({
    columns: [
      "worker",
      "messages",
      "requested gap",
      "achieved gap",
      "gap error",
      "error mean",
      "error p50",
      "error p99",
      "error max",
    ],
    rows: [...result.perWorker.map((w) => row(w.worker, w)), row("all", result.overall)],
  });
}

function printClient(
  result: ClientResult,
  opts: { json: boolean; verbose: boolean; quiet: boolean; [key: string]: unknown },
): void {
  if (opts.json) {
    const { senders, ...rest } = result;
    const doc = jsonDocument(TOOL, "client", { ...opts }, {
      ...rest,
      ...(opts.verbose ? { sent: senders.map((s) => s.sent ?? []) } : {}),
    }, result.elapsedMs);
    writeStdout(JSON.stringify(doc) + "\n");
    return;
  }
  if (opts.verbose) {
    // Senders run in Web Workers and cannot print: their lines are shown after the run.
    for (const sender of result.senders) {
      writeStderr(`[Worker ${sender.worker}] Connected. Server says: ${sender.greeting}\n`);
      for (const line of sender.sent ?? []) {
        writeStderr(`[Worker ${sender.worker}] Sending: ${line}\n`);
      }
    }
  }
  writeStdout(
    [
      `${result.dist}, ${result.workers} workers × ${result.intervals} intervals, seed ${result.seed}`,
      "times in ms; error = send time − deadline",
      clientTable(result),
      "All workers have finished.",
    ].join("\n") + "\n",
  );
}

function addCheckCommand(program: Command, exit: { code: number }): void {
  const command = program
    .command("check")
    .description("run a server and a client and test the measured gaps against the distribution")
    .option("-d, --dist <name>", "distribution (as client)", "e")
    .option("-p, --param <x>", "distribution parameter (repeat for two)", collect, [] as string[])
    .option("-n, --intervals <n>", "intervals per worker", intOption(1, 10_000_000), 2000)
    .option("-w, --workers <n>", "client workers", intOption(1, 1000), 1)
    .option("-m, --mode <mode>", "server mode", "async")
    .option("--seed <n>", "seed", intOption(0, 0xffff_ffff))
    .option("--alpha <a>", "significance level of the KS test", numberOption(0, 1), 0.01)
    .option("--out <dir>", "write CSV, JSON and SVG plots to DIR");
  addOutputOptions(command).action(async (opts) => {
    const started = performance.now();
    const dist = distFrom(opts);
    const mode = parseMode(opts.mode);
    const seed = opts.seed ?? randomSeed();
    const result = await runCheck({
      dist,
      intervals: opts.intervals,
      workers: opts.workers,
      mode,
      seed,
      alpha: opts.alpha,
    }).catch(unwrapTask);
    const report = checkReport(result, dist);
    if (opts.out) {
      const files = await writeReport(opts.out, report);
      if (!opts.quiet && !opts.json) writeStderr(`wrote ${files.join(", ")}\n`);
    }
    if (opts.json) {
      const doc = jsonDocument(
        TOOL,
        "check",
        { ...opts, seed },
        result,
        performance.now() - started,
      );
      writeStdout(JSON.stringify(doc) + "\n");
    } else {
      writeStdout([...(report.notes ?? []), ...report.tables.map(renderTable)].join("\n") + "\n");
    }
    exit.code = result.fit.passed ? EXIT_OK : EXIT_FAILURE;
  });
}

function addBenchCommand(program: Command): void {
  const command = program
    .command("bench")
    .description("timing accuracy and throughput against a study-style Python client and server")
    .option("--study", "reproduce the study for the lab (a StudyReport)", false)
    .addOption(new Option("--scale <scale>", "study size: smoke | quick | full").default("quick"))
    .option("--rate <r>", "events/s per worker for the throughput run", numberOption(0), 1000)
    .option("--workers <n>", "workers for the throughput run", intOption(1, 1000), 100)
    .option("--seconds <s>", "duration of the throughput run", numberOption(0), 10)
    .option("--threads <n>", "client Web Workers for the throughput run", intOption(1, 1000), 2)
    .option("--events <n>", "events for the accuracy runs", intOption(10), 2000)
    .option("--modes <list>", "server modes for the throughput run", "async,thread")
    .option("--no-python", "skip the study-style Python comparison")
    .option("--out <dir>", "write Markdown, CSV, JSON and SVG to DIR");
  addOutputOptions(command).action(async (opts) => {
    const started = performance.now();
    const log = (text: string) => {
      if (!opts.quiet) writeStderr(text + "\n");
    };
    if (opts.study) {
      const scale = parseScale(opts.scale);
      const report = await runStudy(scale, { log });
      if (opts.out) await writeStudyReport(opts.out, report);
      if (opts.json) {
        writeStdout(
          JSON.stringify(
            jsonDocument(
              TOOL,
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
      return;
    }
    const result = await runBench({
      rate: opts.rate,
      workers: opts.workers,
      seconds: opts.seconds,
      threads: opts.threads,
      events: opts.events,
      modes: opts.modes.split(",").map((m: string) => parseMode(m, "--modes")),
      python: opts.python,
      log,
    });
    const report = benchReport(result);
    if (opts.out) await writeReport(opts.out, report);
    if (opts.json) {
      writeStdout(
        JSON.stringify(jsonDocument(TOOL, "bench", opts, result, performance.now() - started)) +
          "\n",
      );
    } else {
      writeStdout([...report.tables.map(renderTable), ...(report.notes ?? [])].join("\n") + "\n");
    }
    for (const s of result.skipped) warn(s);
  });
}

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram(TOOL, "traffic generator and inter-arrival-time server");
  // Commander ignores what actions return, so `check` reports its verdict here.
  const exit = { code: EXIT_OK };
  addServeCommand(program, exit);
  addClientCommand(program);
  addCheckCommand(program, exit);
  addBenchCommand(program);
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  await program.parseAsync(args, { from: "user" });
  return exit.code;
}

// The entry is also the worker and child entry: in those roles it serves its parent.
if (import.meta.main && !serveRegistry(registry)) {
  await runMain("interarrival", () => main(toolArgs()));
}
