/**
 * `interarrival serve`: its options, the call to the server core (serve.ts), and
 * the text it prints without `--json` (the formatters live here, beside it).
 *
 * @module
 */
import type { Command } from "commander";
import {
  addOutputOptions,
  addServerLimitOptions,
  exitCodeAfter,
  intOption,
  numberOption,
  runCommand,
  writeStderr,
} from "../shared/cli.ts";
import { parseMode } from "../shared/mode.ts";
import { UsageError } from "../shared/errors.ts";
import { renderTable } from "../shared/report.ts";
import { DEFAULT_MAX_LINE, DEFAULT_PORT, formatSentence } from "./protocol.ts";
import { runServe } from "./serve.ts";
import type { ReceiverSummary } from "./receiver_summary.ts";
import { FLOW_COLUMNS, type FlowReport } from "./flow_stats.ts";
import { protocolOption, TOOL } from "./cli_options.ts";

/** Adds `serve` to `program`; `exit.code` receives its exit code. */
export function addServeCommand(program: Command, exit: { code: number }): void {
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

/** Milliseconds with three decimals, or `–`. */
export function fixed(ms: number | null | undefined): string {
  return typeof ms === "number" && Number.isFinite(ms) ? ms.toFixed(3) : "–";
}

function gapTable(summary: ReceiverSummary): string {
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

/** Lost sequence numbers as `3, 7-9, …`, at most `max` ranges. */
export function rangesText(flow: FlowReport, max = 10): string {
  const parts = flow.lostRanges.slice(0, max).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
  const more = flow.lostRanges.length > max || !flow.lostRangesComplete;
  return parts.join(", ") + (more ? ", …" : "");
}

/** Flows with sequence numbers: delay, jitter, loss, duplicates, reordering. */
export function flowsTable(flows: FlowReport[], max = 20): string {
  const shown = flows.slice(0, max);
  const table = renderTable({
    columns: [
      ...FLOW_COLUMNS,
      "delay max (ms)",
      "jitter (ms)",
      "lost",
      "dup",
      "reordered",
      "lost sequences",
    ],
    rows: shown.map((f) => [
      f.flow,
      f.connection ? `${f.remote} #${f.connection}` : `${f.remote}/${f.protocol}`,
      f.messages,
      f.bytes,
      fixed(f.delay?.mean),
      fixed(f.delay?.max),
      fixed(f.jitterMs),
      f.lost,
      f.duplicates,
      f.reordered,
      rangesText(f),
    ]),
  });
  return flows.length > max
    ? `${table}\n(${flows.length - max} more flows: see --json or --out)`
    : table;
}

const CLOCKS = {
  shared: "every sender is on this machine: one clock, delays exact",
  separate: "senders on other hosts: delays are only as good as the clocks' synchronisation",
  unknown: "no senders",
};

/** The server's report. */
export function serveText(summary: ReceiverSummary, stoppedBy: string): string {
  const lines = [
    `The server is terminating (${stoppedBy})`,
    `Average connection inter-arrival time: ${fixed(summary.averageConnectionInterarrivalMs)} ms`,
    `Average data inter-arrival time: ${fixed(summary.averageDataInterarrivalMs)} ms`,
    `${summary.connections} connections, ${summary.messages} messages, ${summary.bytes} bytes` +
    (summary.invalidUtf8 ? `, ${summary.invalidUtf8} not valid UTF-8` : "") +
    (summary.unterminated ? `, ${summary.unterminated} ended without a newline` : "") +
    (summary.invalidDatagrams ? `, ${summary.invalidDatagrams} datagrams not messages` : ""),
    gapTable(summary),
  ];
  const tracked = summary.flows.filter((f) => f.highestSequence !== null || f.delay !== null);
  if (tracked.length > 0) {
    const d = summary.delay;
    if (d.count > 0) {
      lines.push(
        `One-way delay (ms): mean ${fixed(d.mean)}, p50 ${fixed(d.p50)}, p99 ${fixed(d.p99)}, max ${
          fixed(d.max)
        } — clocks: ${CLOCKS[summary.clocks]}`,
      );
    }
    lines.push(
      `Lost ${summary.lost}, duplicates ${summary.duplicates}, reordered ${summary.reordered}`,
      flowsTable(tracked),
    );
  }
  if (summary.note) lines.push(`Note: ${summary.note}`);
  return lines.join("\n");
}
