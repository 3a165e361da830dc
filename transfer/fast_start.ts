/**
 * The fast start of `transfer upload FILE` with `--json` or `--quiet`: a plain
 * command line of one regular file and the options below is parsed here,
 * without `commander` (its Node compatibility imports cost ~75 ms of every
 * client start here; the course-compatible lockstep of 100 MB takes about a
 * second, so that was 7% of it). It runs the same code as the full command line
 * (transfer/cli.ts: `collectUploads`, `uploadMany`, shared/cli_run.ts's
 * `runCommand`) and prints the same document or text; the `options` of the
 * document are built in commander's order (defaults in the order the options
 * are defined, then new keys in the order given).
 *
 * Anything else (another command, another option, a short or course-style
 * spelling, a value the full parser would refuse, a directory, a missing file,
 * thread or process mode, text output with a progress bar) returns `null` and
 * the full command line runs, with its usage errors and help.
 * `TRANSFER_FAST_START=off` turns this path off (for comparisons).
 *
 * @module
 */
import { intInRange, splitPlainArgs } from "../shared/argv.ts";
import { runCommand } from "../shared/cli_run.ts";
import { MODE_ALIASES } from "../shared/mode.ts";
import type { TransferMode, TransferOptions, TransferResult } from "./client.ts";
import { collectUploads, uploadMany } from "./files.ts";
import { DEFAULT_PORT, formatSize } from "./protocol.ts";

/** The options this path takes (with a value); `--json` and `--quiet` are the flags. */
const VALUE_OPTIONS = ["--key", "--mode", "--server", "--port", "--id", "--timeout"] as const;

/** The upload command's option defaults, in the order transfer/cli.ts defines them. */
function uploadDefaults(): Record<string, unknown> {
  return {
    force: false,
    server: "127.0.0.1",
    port: DEFAULT_PORT,
    timeout: 30_000,
    tls: false,
    mode: "auto",
    streams: 2,
    resume: false,
    blockMd5: false,
    json: false,
    verbose: false,
    quiet: false,
  };
}

/** What a plain upload command line asks for, or null when the full parser must run. */
export function parseFastUpload(
  args: readonly string[],
): { path: string; key?: string; flags: Record<string, unknown>; options: TransferOptions } | null {
  if (args[0] !== "upload") return null;
  const json = args.includes("--json");
  const quiet = args.includes("--quiet");
  if (!json && !quiet) return null;
  const plain = splitPlainArgs(
    args.slice(1).filter((arg) => arg !== "--json" && arg !== "--quiet"),
    VALUE_OPTIONS,
  );
  if (plain === null || plain.words.length !== 1) return null;
  const path = plain.words[0];
  try {
    if (!Deno.statSync(path).isFile) return null;
  } catch {
    return null;
  }
  const flags = uploadDefaults();
  for (const [name, text] of plain.options) {
    // commander may read `--key -x` differently: leave such lines to it.
    if (text.startsWith("-")) return null;
    let value: string | number | null = text;
    if (name === "--port") value = intInRange(text, 1, 65535);
    else if (name === "--timeout") value = intInRange(text, 1, Number.MAX_SAFE_INTEGER);
    else if (name === "--mode") {
      const mode = text === "auto" ? "auto" : MODE_ALIASES[text.trim().toLowerCase()];
      if (mode !== "auto" && mode !== "sequential" && mode !== "async") return null;
    }
    if (value === null) return null;
    flags[name.slice(2)] = value;
  }
  if (json) flags.json = true;
  if (quiet) flags.quiet = true;
  const id = flags.id;
  if (typeof id !== "string") return null;
  const modeText = String(flags.mode);
  const mode: TransferMode = modeText === "auto"
    ? "auto"
    : MODE_ALIASES[modeText.trim().toLowerCase()];
  const options: TransferOptions = {
    host: String(flags.server),
    port: Number(flags.port),
    id,
    timeoutMs: Number(flags.timeout),
    key: "",
    mode,
    streams: 2,
    resume: false,
    blockMd5: false,
  };
  const key = typeof flags.key === "string" ? flags.key : undefined;
  return { path, key, flags, options };
}

/**
 * Runs `transfer upload FILE` through the fast start when the command line is a
 * plain one (see the module documentation); returns the exit code, or null.
 */
export async function fastUpload(args: readonly string[]): Promise<number | null> {
  if (fastStartOff()) return null;
  const parsed = parseFastUpload(args);
  if (parsed === null) return null;
  const { path, key, flags, options } = parsed;
  return await runCommand("transfer", "upload", flags, async () => {
    const entries = collectUploads([path], "");
    if (key !== undefined) entries[0].key = key;
    const result = await uploadMany(entries, { ...options, force: false });
    const row = result.files[0];
    if (row.status === "failed") throw new Error(row.reason);
    if (row.result) return { results: row.result, text: describeTransfer("Uploaded", row.result) };
    return { results: row, text: `Skipped '${row.key}': ${row.reason}` };
  });
}

function fastStartOff(): boolean {
  try {
    return Deno.env.get("TRANSFER_FAST_START") === "off";
  } catch {
    return false; // No env permission: nobody could have set it.
  }
}

/** The text of a finished transfer (both MD5s, what moved, how, how fast). */
export function describeTransfer(verb: string, result: TransferResult): string {
  const seconds = result.elapsedMs / 1000;
  const rate = seconds > 0 ? result.size / seconds / 1e6 : 0;
  return [
    `MD5 (client): ${result.localMd5}`,
    `MD5 (server): ${result.serverMd5}  ok`,
    `${verb} '${result.key}' ${result.path === result.key ? "" : `(${result.path}) `}` +
    `${formatSize(result.size)} in ${result.blocks} blocks of ${result.blockSize} B ` +
    `(${result.blocksSent} sent this run), ${result.mode}` +
    `${result.plan === "forced" ? "" : ` (${result.plan} plan)`}` +
    `${result.streams > 1 ? ` x${result.streams}` : ""}: ${seconds.toFixed(3)} s, ${
      rate.toFixed(1)
    } MB/s`,
  ].join("\n");
}
