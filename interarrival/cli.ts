/**
 * The `interarrival` command line (loaded by main.ts once it is not a worker):
 * parses and validates options, calls the cores, prints through shared/cli.ts.
 *
 * - `serve`: receiver (TCP or UDP): inter-arrival times, delay, jitter, loss per flow.
 * - `client`: generator of messages (flow, sequence, send time) with drawn gaps and sizes.
 * - `decode`: per-interval series from a saved `serve --out` log.
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
  EXIT_OK,
  exitCodeAfter,
  intOption,
  numberOption,
  runCommand,
  writeStderr,
} from "../shared/cli.ts";
import { parseMode } from "../shared/mode.ts";
import { errorMessage, TaskError, UsageError } from "../shared/errors.ts";
import { csvTable, renderTable, writeReport } from "../shared/report.ts";
import { DISTRIBUTIONS, parseDistribution, randomSeed } from "./distributions.ts";
import { DEFAULT_MAX_LINE, DEFAULT_PORT, formatSentence } from "./protocol.ts";
import { runServe } from "./serve.ts";
import { runClient } from "./client.ts";
import { type FlowSettings, parseBitrate, parseFlowScript, UNLIMITED } from "./flows.ts";
import { checkReport, runCheck } from "./check.ts";
import { decodeLog, decodeReport, parseInterval, seriesTable } from "./decode.ts";
import { addBenchCommand } from "./bench_command.ts";
import { clientText, senderLines, serveText } from "./text.ts";

const TOOL = "interarrival";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function paramList(values: string[], option = "--param"): number[] {
  return values.map((text) => {
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n)) {
      throw new UsageError(`Invalid ${option} '${text}': expected a number`);
    }
    return n;
  });
}

function distFrom(options: { dist: string; param: string[] }) {
  return parseDistribution(options.dist, paramList(options.param));
}

function protocolOption(): Option {
  return new Option("--protocol <p>", "tcp | udp").choices(["tcp", "udp"]).default("tcp");
}

/** Unwraps a runner TaskError so the user sees `Cannot connect to ...`, not the task input. */
function unwrapTask(error: unknown): never {
  if (error instanceof TaskError && error.cause instanceof Error) throw error.cause;
  throw error;
}

function addServeCommand(program: Command, exit: { code: number }): void {
  const command = program
    .command("serve")
    .description("receiver: inter-arrival times, one-way delay, jitter, loss, reordering per flow")
    .option("-a, --address <host>", "address to listen on (0.0.0.0: all interfaces)", "0.0.0.0")
    .option("--host <host>", "same as --address")
    .option("-p, --port <n>", "port (0 picks a free one)", intOption(0, 65535), DEFAULT_PORT)
    .addOption(protocolOption())
    .option(
      "--concurrency-mode <mode>",
      "the study's modes: iter | thr | proc (a thread or process per connection)",
    )
    .option("-m, --mode <mode>", "sequential | async | thread | process (tcp)", "async")
    .option("--workers <n>", "thread/process pool size", intOption(1, 256), 2)
    .option("--per-connection", "thread/process: a worker or child per connection", false)
    .option("--duration <s>", "stop after this many seconds", numberOption(0))
    .option("--connections <n>", "stop after this many connections have closed", intOption(1))
    .option(
      "--out <file>",
      "FILE.csv: stream every sample there; FILE.json: summary and connections",
    )
    .option(
      "--max-line <bytes>",
      "longest message; longer closes the connection",
      intOption(1, 1 << 30),
      DEFAULT_MAX_LINE,
    )
    .option(
      "--max-flows <n>",
      "flows tracked one by one (the rest count as one)",
      intOption(1),
      10_000,
    )
    .option("--idle-timeout <s>", "close a connection silent this long", numberOption(0), 60)
    .option(
      "--grace <s>",
      "time open connections get when stopping",
      numberOption(0, 3600, true),
      1,
    );
  addOutputOptions(addServerLimitOptions(command)).action(async (opts) => {
    const mode = opts.concurrencyMode !== undefined
      ? parseMode(opts.concurrencyMode, "--concurrency-mode")
      : parseMode(opts.mode);
    if (opts.protocol === "udp" && mode !== "async") {
      throw new UsageError(
        `--protocol udp is received in one socket: use --mode async, not ${mode}`,
      );
    }
    const hostname = opts.host ?? opts.address;
    const log = (text: string) => {
      if (!opts.quiet) writeStderr(text + "\n");
    };
    const options = { address: hostname, port: opts.port, mode, workers: opts.workers };
    exit.code = await runCommand(TOOL, "serve", { ...opts, ...options }, async () => {
      const outcome = await runServe(
        {
          hostname,
          port: opts.port,
          mode,
          protocol: opts.protocol,
          workers: opts.workers,
          backlog: opts.backlog,
          maxConnections: opts.maxConnections,
          // The study's thr and proc spawned a worker per client: --concurrency-mode keeps that.
          perConnection: opts.perConnection ||
            (opts.concurrencyMode !== undefined && (mode === "thread" || mode === "process")),
          verbose: opts.verbose,
          maxLine: opts.maxLine,
          maxFlows: opts.maxFlows,
          idleTimeoutMs: opts.idleTimeout * 1000,
          graceMs: opts.grace * 1000,
          durationS: opts.duration,
          connections: opts.connections,
          out: opts.out,
        },
        opts.verbose
          ? {
            onMessage: (text, remote) => writeStderr(formatSentence(text, remote) + "\n"),
            onOpen: (remote, where) =>
              writeStderr(`[+] New connection from ${remote} (${where})\n`),
            onClose: (remote, reason) =>
              writeStderr(`[x] Connection closed for ${remote} (${reason})\n`),
          }
          : {},
        (host, port) =>
          log(
            `The ${mode} ${opts.protocol} server is ready to receive on ${host}:${port} ` +
              `(PID ${Deno.pid})`,
          ),
      );
      if (outcome.wrote) log(`wrote ${outcome.wrote}`);
      const signal = outcome.stoppedBy === "SIGINT" || outcome.stoppedBy === "SIGTERM"
        ? outcome.stoppedBy
        : null;
      return {
        results: { ...outcome.summary, stoppedBy: outcome.stoppedBy },
        text: serveText(outcome.summary, outcome.stoppedBy),
        // Stopped by a signal: everything is still printed and written, then 130 or 143.
        exitCode: signal ? exitCodeAfter(signal) : undefined,
      };
    });
  });
}

function addClientCommand(program: Command, exit: { code: number }): void {
  const names = Object.entries(DISTRIBUTIONS)
    .map(([name, info]) => `${info.aliases[0]}=${name}(${info.params.join(", ")})`)
    .join("; ");
  const command = program
    .command("client")
    .description(
      "traffic generator: each flow sends messages (flow id, sequence, send time) on its own connection or socket",
    )
    .option(
      "-w, --workers <n>",
      "flows (each its own connection or socket)",
      intOption(1, 10_000),
      1,
    )
    .option(
      "-n, --intervals <n>",
      "inter-event intervals per flow (sends n+1 messages; default 10, or no limit with -t)",
      intOption(0, 100_000_000),
    )
    .option(
      "-t, --duration <s>",
      "stop each flow this many seconds after its first message",
      numberOption(0),
    )
    .option(
      "-d, --dist <name>",
      `inter-departure distribution (default: constant 1000 messages/s): ${names}`,
    )
    .option("-p, --param <x>", "distribution parameter (repeat for two)", collect, [] as string[])
    .option("-C, --rate <r>", "constant rate in messages/s (same as -d c -p R)", numberOption(0))
    .option("-b, --bitrate <bps>", "send at this bitrate with the drawn sizes (10M, 512k, 64000)")
    .option("--size-dist <name>", "message size distribution (bytes in place of seconds)")
    .option(
      "--size-param <x>",
      "size distribution parameter (repeat for two)",
      collect,
      [] as string[],
    )
    .option("--flows <file>", "one flow per line with its own options (-s -P --protocol -d -p ...)")
    .addOption(protocolOption())
    .addOption(
      new Option("--format <f>", "binary (header + padding) | text (the study's lines, tcp)")
        .choices(["binary", "text"]).default("binary"),
    )
    .option("-s, --server <host>", "server address (required without --flows)")
    .option("-P, --port <n>", "server port", intOption(1, 65535), DEFAULT_PORT)
    .option(
      "--seed <n>",
      "seed: every flow's sequence is reproducible",
      intOption(0, 0xffff_ffff),
    )
    .option(
      "--threads <n>",
      "Web Workers to spread the flows over (default: one each)",
      intOption(1, 10_000),
    )
    .option("--connect-timeout <s>", "connect and greeting timeout", numberOption(0), 10)
    .addOption(
      new Option("--engine <e>", "auto: libc through FFI where it runs | deno: Deno's socket API")
        .choices(["auto", "deno"]).default("auto"),
    );
  addOutputOptions(command).action(async (opts) => {
    const settings = await clientSettings(opts);
    const seed = opts.seed ?? randomSeed();
    exit.code = await runCommand(TOOL, "client", { ...opts, seed }, async () => {
      if (!opts.quiet && !opts.json) {
        writeStderr(`Starting ${settings.flows.length} flows...\n`);
      }
      const result = await runClient({
        ...settings.defaults,
        workers: settings.flows.length,
        flows: settings.flows,
        format: opts.format,
        seed,
        verbose: opts.verbose,
        threads: opts.threads,
        connectTimeoutMs: opts.connectTimeout * 1000,
        tcpEngine: opts.engine,
        udpEngine: opts.engine,
      }).catch(unwrapTask);
      if (opts.verbose && !opts.json) writeStderr(senderLines(result).join("\n") + "\n");
      const { senders, ...rest } = result;
      return {
        results: { ...rest, ...(opts.verbose ? { sent: senders.map((s) => s.sent ?? []) } : {}) },
        text: clientText(result),
      };
    });
  });
}

/** The flows a `client` command line asks for: `--flows FILE`, or `-w` copies of one. */
async function clientSettings(
  // deno-lint-ignore no-explicit-any
  opts: Record<string, any>,
): Promise<{ defaults: FlowSettings; flows: FlowSettings[] }> {
  if (opts.server === undefined && opts.flows === undefined) {
    throw new UsageError("required option '-s, --server <host>' not specified");
  }
  const dist = opts.rate !== undefined
    ? parseDistribution("c", [opts.rate])
    : opts.dist === undefined && opts.param.length === 0
    ? parseDistribution("c", [1000]) // D-ITG's default
    : distFrom({ dist: opts.dist ?? "e", param: opts.param });
  const sizeDist = opts.sizeDist === undefined
    ? null
    : parseDistribution(opts.sizeDist, paramList(opts.sizeParam, "--size-param"));
  if (opts.format === "text" && (opts.protocol === "udp" || sizeDist || opts.bitrate)) {
    throw new UsageError(
      "--format text is the study's TCP lines: no --protocol udp, --size-dist or -b",
    );
  }
  const durationMs = opts.duration === undefined ? null : opts.duration * 1000;
  const defaults: FlowSettings = {
    host: opts.server ?? "127.0.0.1",
    port: opts.port,
    protocol: opts.protocol,
    dist,
    sizeDist,
    bitrate: opts.bitrate === undefined ? null : parseBitrate(opts.bitrate),
    intervals: opts.intervals ?? (durationMs === null ? 10 : UNLIMITED),
    durationMs,
    startDelayMs: 0,
  };
  if (opts.flows === undefined) {
    return { defaults, flows: Array.from({ length: opts.workers }, () => ({ ...defaults })) };
  }
  let text: string;
  try {
    text = await Deno.readTextFile(opts.flows);
  } catch (error) {
    throw new UsageError(`Cannot read the flow script ${opts.flows}: ${errorMessage(error)}`);
  }
  return { defaults, flows: parseFlowScript(text, defaults) };
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
    .addOption(protocolOption())
    .option("--seed <n>", "seed", intOption(0, 0xffff_ffff))
    .option("--alpha <a>", "significance level of the KS test", numberOption(0, 1), 0.01)
    .option("--out <dir>", "write CSV, JSON and SVG plots to DIR");
  addOutputOptions(command).action(async (opts) => {
    const dist = distFrom(opts);
    const mode = parseMode(opts.mode);
    const seed = opts.seed ?? randomSeed();
    exit.code = await runCommand(TOOL, "check", { ...opts, seed }, async () => {
      const result = await runCheck({
        dist,
        intervals: opts.intervals,
        workers: opts.workers,
        mode,
        protocol: opts.protocol,
        seed,
        alpha: opts.alpha,
      }).catch(unwrapTask);
      const report = checkReport(result, dist);
      if (opts.out) {
        const files = await writeReport(opts.out, report);
        if (!opts.quiet && !opts.json) writeStderr(`wrote ${files.join(", ")}\n`);
      }
      return {
        results: result,
        text: [...(report.notes ?? []), ...report.tables.map(renderTable)].join("\n"),
        ok: result.passed,
      };
    });
  });
}

function addDecodeCommand(program: Command, exit: { code: number }): void {
  const command = program
    .command("decode")
    .argument("<log>", "a `serve --out FILE.csv` log")
    .description(
      "per-interval bitrate, packet rate, delay, jitter and loss from a saved log (as ITGDec)",
    )
    .option("-i, --interval <time>", "interval length: 1s, 250ms, 0.5 (seconds)", "1s")
    .option("--csv", "print the series as CSV", false)
    .option("--out <dir>", "write Markdown, CSV, JSON and SVG plots to DIR");
  addOutputOptions(command).action(async (log: string, opts) => {
    const intervalMs = parseInterval(opts.interval);
    if (Number.isNaN(intervalMs)) {
      throw new UsageError(`Invalid --interval '${opts.interval}': expected 1s, 250ms or 0.5`);
    }
    exit.code = await runCommand(TOOL, "decode", { log, ...opts, intervalMs }, async () => {
      const result = await decodeLog(log, intervalMs);
      const report = decodeReport(result);
      if (opts.out) {
        const files = await writeReport(opts.out, report);
        if (!opts.quiet && !opts.json) writeStderr(`wrote ${files.join(", ")}\n`);
      }
      const text = opts.csv
        ? csvTable(seriesTable(result))
        : [...(report.notes ?? []), ...report.tables.map(renderTable)].join("\n");
      return { results: result, text };
    });
  });
}

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram(TOOL, "traffic generator and inter-arrival-time server");
  // Commander ignores what actions return, so `check` reports its verdict here.
  const exit = { code: EXIT_OK };
  addServeCommand(program, exit);
  addClientCommand(program, exit);
  addCheckCommand(program, exit);
  addDecodeCommand(program, exit);
  addBenchCommand(program, (code) => exit.code = code);
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  await program.parseAsync(args, { from: "user" });
  return exit.code;
}
