/**
 * Option helpers the `interarrival` commands share (cli.ts, serve_command.ts,
 * client_command.ts).
 *
 * @module
 */
import { Option } from "commander";
import { writeStderr } from "../shared/cli.ts";
import { TaskError, UsageError } from "../shared/errors.ts";
import { parseDistribution } from "./distributions.ts";

/** The tool's name in JSON documents and messages. */
export const TOOL = "interarrival";

/** Commander collector for repeated options. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--param` values as numbers; a usage error names a bad one. */
export function paramList(values: string[], option = "--param"): number[] {
  return values.map((text) => {
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n)) {
      throw new UsageError(`Invalid ${option} '${text}': expected a number`);
    }
    return n;
  });
}

/** The distribution of `--dist` and `--param`. */
export function distFrom(options: { dist: string; param: string[] }) {
  return parseDistribution(options.dist, paramList(options.param));
}

/** `--protocol tcp|udp`. */
export function protocolOption(): Option {
  return new Option("--protocol <p>", "tcp | udp").choices(["tcp", "udp"]).default("tcp");
}

/** `--priority realtime|high|normal`: the sending threads' CPU priority (priority.ts). */
export function priorityOption(fallback: "realtime" | "high" | "normal"): Option {
  return new Option(
    "--priority <p>",
    "sending threads: realtime (SCHED_FIFO) | high (nice -20) | normal; raised only where " +
      "permitted (root), dropped by a sender that falls behind",
  ).choices(["realtime", "high", "normal"]).default(fallback);
}

/** Unwraps a runner TaskError so the user sees `Cannot connect to ...`, not the task input. */
export function unwrapTask(error: unknown): never {
  if (error instanceof TaskError && error.cause instanceof Error) throw error.cause;
  throw error;
}

/** A progress line on stderr, unless `--quiet` or `--json` asked for none. */
export function progressLine(opts: { quiet?: boolean; json?: boolean }, text: string): void {
  if (!opts.quiet && !opts.json) writeStderr(text + "\n");
}
