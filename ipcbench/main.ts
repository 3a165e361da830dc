/**
 * `ipcbench`: message-passing speed between threads and processes. This entry
 * parses the command line and prints (via `runCommand`); the commands are in
 * commands.ts, the work in bench.ts, stream.ts, peer.ts and study.ts.
 *
 * @module
 */
import {
  addOutputOptions,
  createProgram,
  intOption,
  runCommand,
  runMain,
  toolArgs,
} from "../shared/cli.ts";
import { enterRole } from "../shared/runtime.ts";
import { DEFAULT_SIZES } from "./bench.ts";
import { TRANSPORT_NAMES, TRANSPORTS } from "./transports.ts";
import { STREAM_TRANSPORTS } from "./stream.ts";
import {
  benchCommand,
  type BenchFlags,
  serveCommand,
  type ServeFlags,
  streamCommand,
  type StreamFlags,
  studyCommand,
  type StudyFlags,
} from "./commands.ts";

export { parsePins, parseSizes } from "./parse.ts";

const TOOL = "ipcbench";

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram("ipcbench", "message-passing speed between threads and processes");
  let code = 0;
  const transportHelp = "\nTransports:\n" +
    TRANSPORT_NAMES.map((t) =>
      `  ${t.padEnd(16)}${TRANSPORTS[t].kind.padEnd(12)}${TRANSPORTS[t].label}`
    )
      .join("\n") +
    "\n";
  addOutputOptions(
    program.command("bench")
      .description(
        "measure round trips of a counter over each transport, size and placement " +
          "(--study: the study's experiment for the lab)",
      )
      .option("--transports <list>", "comma-separated list (below) or all", "all")
      .option("--sizes <list>", "message sizes in bytes (k, m suffixes)", DEFAULT_SIZES.join(","))
      .option("--round-trips <n>", "timed round trips per run", intOption(1, 100_000_000), 10000)
      .option("--warmup <n>", "untimed round trips first", intOption(0, 10_000_000), 1000)
      .option("--runs <n>", "runs per case (median and spread)", intOption(1, 1000), 3)
      .option(
        "--pin <list>",
        "placement: same (one CPU), split (two), none; list or all",
        "same,split",
      )
      .option(
        "--max-bytes <n>",
        "bytes one direction may carry per run (caps round trips of large messages)",
        intOption(1),
        256 << 20,
      )
      .option("--timeout <ms>", "longest wait for any answer", intOption(100, 3_600_000), 10000)
      .option("--no-anchors", "skip the C anchors (same ping-pong in C, same placement; gcc)")
      .option("--out <dir>", "write Markdown, CSV, JSON and SVG plots into DIR")
      .option("--log <file>", "write every timed round trip (CSV: transport,pin,size,run,index,us)")
      .option("--peer <host:port>", "measure tcp/udp against `ipcbench serve` on another machine")
      .option("--study", "run the study's experiment and print a StudyReport", false)
      .option("--scale <scale>", "study scale: smoke, quick or full", "smoke")
      .addHelpText("after", transportHelp),
  ).action(async (flags: BenchFlags) => {
    code = await runCommand(TOOL, "bench", { ...flags }, () => benchCommand(flags));
  });
  addOutputOptions(
    program.command("stream")
      .description(
        "one-way throughput (MB/s, msg/s) per transport and size, and with --under-load K the " +
          "round trips of every K-th message while the stream flows (sockperf under-load)",
      )
      .option("--transports <list>", `${STREAM_TRANSPORTS.join(", ")} or all`, "all")
      .option("--sizes <list>", "message sizes in bytes (k, m suffixes)", "64,4096,65536")
      .option("--messages <n>", "messages per run", intOption(1, 100_000_000), 20000)
      .option("--max-bytes <n>", "bytes a run may carry (caps messages)", intOption(1), 64 << 20)
      .option("--runs <n>", "runs per case (median, CI)", intOption(1, 1000), 3)
      .option("--pin <list>", "placement: same, split, none; list or all", "same,split")
      .option("--under-load <k>", "every K-th message is answered (0: none)", intOption(0), 0)
      .option("--window <n>", "child channel: messages per acknowledgement", intOption(1), 64)
      .option("--timeout <ms>", "longest wait for any answer", intOption(100, 3_600_000), 10000),
  ).action(async (flags: StreamFlags) => {
    code = await runCommand(TOOL, "stream", { ...flags }, () => streamCommand(flags));
  });
  addOutputOptions(
    program.command("serve")
      .description(
        "answer `ipcbench bench --peer` from another machine: TCP (hello, then echo) and UDP " +
          "on one port",
      )
      .option("--listen <host:port>", "address to listen on", "0.0.0.0:7077")
      .option("--max-connections <n>", "TCP connections at once", intOption(1, 1024), 16)
      .option(
        "--idle-timeout <ms>",
        "longest wait for a client's next message",
        intOption(100),
        60000,
      )
      .option("--once", "exit after the first TCP connection ends", false),
  ).action(async (flags: ServeFlags) => {
    const interrupted = { value: false };
    code = await runCommand(TOOL, "serve", { ...flags }, () => serveCommand(flags, interrupted));
    if (interrupted.value && code === 0) code = 130;
  });
  addOutputOptions(
    program.command("study")
      .description(
        "run exactly the study's two cases (child pipes and TCP) and print them as the study " +
          "did, next to the corrected figures",
      )
      .option("--round-trips <n>", "round trips per case", intOption(1, 100_000_000), 10000)
      .option("--repeats <n>", "times to run both cases", intOption(1, 100), 3)
      .option("--pin <pin>", "placement: same, split or none", "none")
      .option("--timeout <ms>", "longest wait for any answer", intOption(100, 3_600_000), 10000),
  ).action(async (flags: StudyFlags) => {
    code = await runCommand(TOOL, "study", { ...flags }, () => studyCommand(flags));
  });
  // `deno task ipcbench -- bench ...` passes the `--` through.
  if (args[0] === "--") args = args.slice(1);
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  await program.parseAsync(args, { from: "user" });
  return code;
}

// The entry is also the worker and child entry: in those roles it serves its parent.
if (import.meta.main && !enterRole()) await runMain("ipcbench", () => main(toolArgs()));
