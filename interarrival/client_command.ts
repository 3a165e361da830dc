/**
 * `interarrival client`: its options (or a `--flows` script), the call to the
 * generator core (client.ts), and the text it prints without `--json` (the
 * formatters live here, beside it).
 *
 * @module
 */
import { type Command, Option } from "commander";
import { addOutputOptions, intOption, numberOption, runCommand } from "../shared/cli.ts";
import { errorMessage, UsageError } from "../shared/errors.ts";
import { renderTable } from "../shared/report.ts";
import { DISTRIBUTIONS, parseDistribution, randomSeed } from "./distributions.ts";
import { DEFAULT_PORT } from "./protocol.ts";
import { type ClientResult, runClient } from "./client.ts";
import { type FlowSettings, parseBitrate, parseFlowScript, UNLIMITED } from "./flows.ts";
import {
  collect,
  distFrom,
  paramList,
  priorityOption,
  progressLine,
  protocolOption,
  TOOL,
  unwrapTask,
} from "./cli_options.ts";
import { fixed } from "./serve_command.ts";
import { describePriority } from "./priority.ts";

/** Adds `client` to `program`; `exit.code` receives its exit code. */
export function addClientCommand(program: Command, exit: { code: number }): void {
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
    )
    .addOption(priorityOption("normal"));
  addOutputOptions(command).action(async (opts) => {
    const settings = await clientSettings(opts);
    const seed = opts.seed ?? randomSeed();
    exit.code = await runCommand(TOOL, "client", { ...opts, seed }, async () => {
      progressLine(opts, `Starting ${settings.flows.length} flows...`);
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
        priority: opts.priority,
      }).catch(unwrapTask);
      // Verbose lines are what was asked for: `--quiet` does not silence them.
      if (opts.verbose) progressLine({ json: opts.json }, senderLines(result).join("\n"));
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

function clientTable(result: ClientResult): string {
  const row = (name: string | number, t: ClientResult["overall"]) => [
    name,
    t.messages,
    t.bytes,
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
      "flow",
      "messages",
      "bytes",
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

/** The client's report (and, verbose, what each sender sent, on stderr's behalf). */
export function clientText(result: ClientResult): string {
  const lines = [
    `${result.dist}, ${result.workers} flows × ${
      result.durationMs !== null && result.intervals >= 100_000_000
        ? `${result.durationMs / 1000} s`
        : `${result.intervals} intervals`
    }, sizes ${result.sizes}, seed ${result.seed}, sent through ${
      [...new Set(result.perWorker.map((w) => w.engine === "ffi" ? "libc (FFI)" : "Deno's API"))]
        .join(" and ")
    }`,
    "times in ms; error = send time − deadline",
    clientTable(result),
  ];
  if (result.perWorker.some((w) => w.priority.requested !== "normal")) {
    lines.push(
      `sending threads ran at ${describePriority(result.perWorker.map((w) => w.priority))}`,
    );
  }
  if (result.overall.sendErrors > 0) {
    lines.push(`${result.overall.sendErrors} datagrams could not be sent (no receiver?)`);
  }
  lines.push("All workers have finished.");
  return lines.join("\n");
}

/** Verbose lines of the senders (they run in Web Workers and cannot print). */
export function senderLines(result: ClientResult): string[] {
  const lines: string[] = [];
  for (const sender of result.senders) {
    if (sender.protocol === "tcp") {
      lines.push(`[Worker ${sender.worker}] Connected. Server says: ${sender.greeting}`);
    }
    for (const line of sender.sent ?? []) lines.push(`[Worker ${sender.worker}] Sending: ${line}`);
  }
  return lines;
}
