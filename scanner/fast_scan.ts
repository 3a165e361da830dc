/**
 * The fast path for a plain scan, `scanner ADDRESS... [-p PORTS] [--timeout MS]
 * [--retries N] [--engine E] [--show STATES] [--grep | --csv]` with literal
 * addresses: parsed by hand, so the process never loads commander and the Node
 * compatibility layer it pulls in (about 25 ms of start-up on a quiet machine).
 * With the `ffi` engine any number of probes runs here (one isolate keeps
 * thousands in flight); with `connect`, at most 128. It prints exactly what the
 * full command line prints, and Ctrl-C prints the partial result and exits 130
 * the same way. Anything else (host names, CIDR blocks, other options, any error
 * in the arguments, a progress bar for a long scan on a terminal) returns `null`
 * and goes to the full command line, which gives the proper usage errors.
 *
 * @module
 */
import { intInRange, splitPlainArgs } from "../shared/argv.ts";
import { errorMessage } from "../shared/errors.ts";
import { formatCsv, formatGrep, formatTable, parseShow } from "./output.ts";
import { DEFAULT_RETRIES, DEFAULT_TIMEOUT_MS, scan } from "./scan.ts";
import { DEFAULT_PORTS, parsePorts, parseTargetList, resolveTargets } from "./targets.ts";
import type { ScanTarget } from "./targets.ts";
import type { PortState } from "./verdict.ts";
import { type EngineName, resolveEngine } from "./engines.ts";
import { DEFAULT_MAX_RTT_MS, DEFAULT_MIN_RTT_MS } from "./limits.ts";

/** Most probes the fast path takes on with the `connect` engine (one isolate's connects). */
export const FAST_PATH_MAX_PROBES = 128;
/** Scans above this many probes go to the full command line on a terminal (progress bar). */
const FAST_PATH_TERMINAL_PROBES = 4096;

/** A plain scan, as the fast path understands it. */
export interface PlainScan {
  targets: ScanTarget[];
  ports: number[];
  timeoutMs: number;
  retries: number;
  engine: EngineName;
  show: PortState[];
  format: "table" | "grep" | "csv";
}

const FLAGS = new Set(["--grep", "--csv"]);

/** Parses a plain scan; `null` for anything the full command line must handle. */
export async function parsePlainScan(args: readonly string[]): Promise<PlainScan | null> {
  const flags = args.filter((arg) => FLAGS.has(arg));
  if (flags.length > 1) return null;
  const rest = args.filter((arg) => !FLAGS.has(arg)).flatMap((arg) =>
    arg === "-p-" ? ["-p", "-"] : [arg]
  );
  const plain = splitPlainArgs(rest, [
    "-p",
    "--ports",
    "--timeout",
    "--retries",
    "--engine",
    "--show",
  ]);
  if (plain === null) return null;
  const { words, options } = plain;
  const portSpec = options.get("--ports") ?? options.get("-p") ?? DEFAULT_PORTS;
  const timeoutMs = options.has("--timeout")
    ? intInRange(options.get("--timeout"), 1, 600_000)
    : DEFAULT_TIMEOUT_MS;
  const retries = options.has("--retries")
    ? intInRange(options.get("--retries"), 0, 10)
    : DEFAULT_RETRIES;
  if (timeoutMs === null || retries === null) return null;
  if (words.length === 0 || ["scan", "bench", "merge", "help"].includes(words[0])) {
    return null;
  }
  try {
    const show = parseShow(options.get("--show") ?? "open");
    const ports = parsePorts(portSpec, "-p");
    const specs = parseTargetList(words);
    if (specs.length === 0 || specs.some((spec) => spec.kind !== "address")) return null;
    const { targets, unresolved } = await resolveTargets(specs);
    const probes = targets.length * ports.length;
    if (unresolved.length > 0) return null;
    const engine = resolveEngine(options.get("--engine") ?? "auto");
    if (engine === "connect" && probes > FAST_PATH_MAX_PROBES) return null;
    if (probes > FAST_PATH_TERMINAL_PROBES && Deno.stderr.isTerminal()) return null;
    const format = flags[0] === "--grep" ? "grep" : flags[0] === "--csv" ? "csv" : "table";
    return { targets, ports, timeoutMs, retries, engine, show, format };
  } catch {
    return null;
  }
}

/** Environment variable: `1` prints where a fast-path scan's time went, on stderr. */
export const PHASES_ENV = "SCANNER_PHASES";

/**
 * The phases line `scanner phases: loaded=12.3 setup=4.5 scan=1234.5 output=6.7`
 * (ms; `loaded`: from the runtime's time origin to the entry's first statement,
 * i.e. the runtime's own start in JavaScript plus loading our modules).
 */
export function phasesLine(marks: { entered: number; started: number; scanned: number }): string {
  const now = performance.now();
  const ms = (value: number) => value.toFixed(1);
  return `scanner phases: loaded=${ms(marks.entered)} setup=${
    ms(marks.started - marks.entered)
  } scan=${ms(marks.scanned - marks.started)} output=${ms(now - marks.scanned)}\n`;
}

function wantsPhases(): boolean {
  try {
    return Deno.env.get(PHASES_ENV) === "1";
  } catch {
    return false;
  }
}

/**
 * Runs a plain scan and prints it (exit 0, or 130 after Ctrl-C with the partial
 * result), or returns `null` when the arguments need the full command line.
 * `entered`: `performance.now()` when the entry started (for {@linkcode PHASES_ENV}).
 */
export async function fastScan(
  args: readonly string[],
  entered = performance.now(),
): Promise<number | null> {
  const plain = await parsePlainScan(args);
  if (plain === null) return null;
  const encoder = new TextEncoder();
  const controller = new AbortController();
  // SIGINT exits 130, SIGTERM 143, after printing what was found (no shared/cli.ts here:
  // it would load commander, which this path exists to skip).
  let stoppedBy = "SIGINT" as "SIGINT" | "SIGTERM";
  const onInterrupt = () => controller.abort(new Error("interrupted"));
  const onTerminate = () => {
    stoppedBy = "SIGTERM";
    controller.abort(new Error("terminated"));
  };
  // Installed once the scan waits for answers (each costs ~1 ms at start-up): a
  // scan that its first connects decide ends before a handler could run.
  let listening = false;
  const listen = () => {
    if (listening) return;
    listening = true;
    Deno.addSignalListener("SIGINT", onInterrupt);
    Deno.addSignalListener("SIGTERM", onTerminate);
  };
  try {
    const started = performance.now();
    const result = await scan({
      targets: plain.targets,
      ports: plain.ports,
      mode: "async",
      engine: plain.engine,
      timeoutMs: plain.timeoutMs,
      minRttMs: plain.engine === "ffi"
        ? Math.min(DEFAULT_MIN_RTT_MS, plain.timeoutMs)
        : plain.timeoutMs,
      maxRttMs: DEFAULT_MAX_RTT_MS,
      retries: plain.retries,
      signal: controller.signal,
      onWaiting: listen,
    });
    const scanned = performance.now();
    const text = plain.format === "grep"
      ? formatGrep(result, plain.show)
      : plain.format === "csv"
      ? formatCsv(result, plain.show)
      : formatTable(result, plain.show);
    // Written at once: an asynchronous write's first turn of the event loop cost 0.3-5 ms.
    writeAllSync(Deno.stdout, encoder.encode(text));
    if (wantsPhases()) {
      await writeAll(Deno.stderr, encoder.encode(phasesLine({ entered, started, scanned })));
    }
    if (!result.interrupted) return 0;
    await writeAll(
      Deno.stderr,
      encoder.encode(`scanner: interrupted by ${stoppedBy}: the results above are partial\n`),
    );
    return stoppedBy === "SIGTERM" ? 143 : 130;
  } catch (error) {
    await writeAll(Deno.stderr, encoder.encode(`scanner: error: ${errorMessage(error)}\n`));
    return 1;
  } finally {
    if (listening) {
      Deno.removeSignalListener("SIGINT", onInterrupt);
      Deno.removeSignalListener("SIGTERM", onTerminate);
    }
  }
}

function writeAllSync(stream: { writeSync(bytes: Uint8Array): number }, bytes: Uint8Array) {
  for (let offset = 0; offset < bytes.length;) offset += stream.writeSync(bytes.subarray(offset));
}

async function writeAll(stream: { write(bytes: Uint8Array): Promise<number> }, bytes: Uint8Array) {
  for (let offset = 0; offset < bytes.length;) offset += await stream.write(bytes.subarray(offset));
}
