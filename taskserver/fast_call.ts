/**
 * The fast path for a plain `taskserver call OP PAYLOAD [--host H] [--port N]
 * [--timeout MS]`: parsed by hand, so the process never loads commander and the
 * Node compatibility layer it pulls in (about 25 ms of a 45 ms start here).
 * `start.sh` runs this command 100 times at once, and its start-up should not
 * be what the benchmark measures. Anything else (`--json`, `--repeat`, `--help`,
 * any error in the arguments) returns `null` and goes to the full command line,
 * which prints the same answers and the proper usage errors.
 *
 * @module
 */
import { call } from "./client.ts";
import { intInRange, splitPlainArgs } from "../shared/argv.ts";
import { parseOperation } from "./ops.ts";
import { errorMessage } from "../shared/errors.ts";
import { red } from "../shared/colors.ts";

/** The study's server port, the default for every command. */
export const DEFAULT_PORT = 65432;

/** A plain `call`, as the fast path understands it. */
export interface PlainCall {
  op: "swapcase" | "eval" | "reverse";
  payload: string;
  host: string;
  port: number;
  timeoutMs: number;
}

/** Parses a plain `call`; `null` for anything the full command line must handle. */
export function parsePlainCall(args: readonly string[]): PlainCall | null {
  if (args[0] !== "call") return null;
  const plain = splitPlainArgs(args.slice(1), ["--host", "--port", "--timeout"]);
  if (plain === null || plain.words.length < 2) return null;
  const { words, options } = plain;
  const port = options.has("--port") ? intInRange(options.get("--port"), 1, 65535) : DEFAULT_PORT;
  const timeoutMs = options.has("--timeout")
    ? intInRange(options.get("--timeout"), 1, Number.MAX_SAFE_INTEGER)
    : 30_000;
  const op = parseOperation(words[0]);
  if (port === null || timeoutMs === null || op === undefined) return null;
  const host = options.get("--host") ?? "127.0.0.1";
  return { op, payload: words.slice(1).join(" "), host, port, timeoutMs } as PlainCall;
}

/**
 * Runs a plain `call` and returns its exit code (1 on an `Error:` reply or a
 * failed connection), or `null` when the arguments need the full command line.
 */
export async function fastCall(args: readonly string[]): Promise<number | null> {
  const plain = parsePlainCall(args);
  if (plain === null) return null;
  const encoder = new TextEncoder();
  try {
    const [reply] = await call(
      { host: plain.host, port: plain.port, timeoutMs: plain.timeoutMs },
      plain.op,
      plain.payload,
    );
    await Deno.stdout.write(encoder.encode(reply + "\n"));
    return reply.startsWith("Error:") ? 1 : 0;
  } catch (error) {
    await Deno.stderr.write(
      encoder.encode(`${red("taskserver: error:")} ${errorMessage(error)}\n`),
    );
    return 1;
  }
}
