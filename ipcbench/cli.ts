/**
 * ipcbench's command line: parses and validates, then calls the command bodies
 * (commands.ts), which print through `runCommand`; the work is in bench.ts,
 * stream.ts, peer.ts and study.ts. Loaded by main.ts for a normal start only.
 *
 * @module
 */
import { addOutputOptions, createProgram, intOption, runCommand } from "../shared/cli.ts";
import { STREAM_TRANSPORTS } from "./stream.ts";
import { addBenchCommand } from "./bench_cli.ts";
import {
  serveCommand,
  type ServeFlags,
  streamCommand,
  type StreamFlags,
  studyCommand,
  type StudyFlags,
} from "./commands.ts";

const TOOL = "ipcbench";

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram("ipcbench", "message-passing speed between threads and processes");
  let code = 0;
  addBenchCommand(program, (exit) => code = exit);
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
