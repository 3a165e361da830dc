/**
 * The fast path for a small plain scan, `scanner ADDRESS... [-p PORTS]
 * [--timeout MS] [--engine E]` with literal addresses and at most 128 probes: parsed by hand,
 * so the process never loads commander and the Node compatibility layer it pulls
 * in (about 25 ms of start-up here). It prints exactly what the full command
 * line prints. Anything else (host names, CIDR blocks, other options, any error
 * in the arguments) returns `null` and goes to the full command line, which
 * gives the proper usage errors.
 *
 * @module
 */
import { intInRange, splitPlainArgs } from "../shared/argv.ts";
import { errorMessage } from "../shared/errors.ts";
import { formatTable } from "./output.ts";
import { DEFAULT_TIMEOUT_MS, scan } from "./scan.ts";
import { DEFAULT_PORTS, parsePorts, parseTargetList, resolveTargets } from "./targets.ts";
import type { ScanTarget } from "./targets.ts";
import { type EngineName, resolveEngine } from "./engines.ts";

/** Most probes the fast path takes on: what one isolate runs at once in `async` mode. */
export const FAST_PATH_MAX_PROBES = 128;

/** A small plain scan, as the fast path understands it. */
export interface PlainScan {
  targets: ScanTarget[];
  ports: number[];
  timeoutMs: number;
  engine: EngineName;
}

/** Parses a small plain scan; `null` for anything the full command line must handle. */
export async function parsePlainScan(args: readonly string[]): Promise<PlainScan | null> {
  const plain = splitPlainArgs(args, ["-p", "--ports", "--timeout", "--engine"]);
  if (plain === null) return null;
  const { words, options } = plain;
  const portSpec = options.get("--ports") ?? options.get("-p") ?? DEFAULT_PORTS;
  const timeoutMs = options.has("--timeout")
    ? intInRange(options.get("--timeout"), 1, 600_000)
    : DEFAULT_TIMEOUT_MS;
  if (timeoutMs === null) return null;
  const engineChoice = options.get("--engine") ?? "auto";
  if (words.length === 0 || words[0] === "scan" || words[0] === "bench" || words[0] === "help") {
    return null;
  }
  try {
    const ports = parsePorts(portSpec, "-p");
    const specs = parseTargetList(words);
    if (specs.length === 0 || specs.some((spec) => spec.kind !== "address")) return null;
    const { targets, unresolved } = await resolveTargets(specs);
    if (unresolved.length > 0 || targets.length * ports.length > FAST_PATH_MAX_PROBES) return null;
    return { targets, ports, timeoutMs, engine: resolveEngine(engineChoice) };
  } catch {
    return null;
  }
}

/**
 * Runs a small plain scan and prints the table (exit 0), or returns `null` when
 * the arguments need the full command line.
 */
export async function fastScan(args: readonly string[]): Promise<number | null> {
  const plain = await parsePlainScan(args);
  if (plain === null) return null;
  const encoder = new TextEncoder();
  try {
    const result = await scan({
      targets: plain.targets,
      ports: plain.ports,
      mode: "async",
      engine: plain.engine,
      timeoutMs: plain.timeoutMs,
    });
    await Deno.stdout.write(encoder.encode(formatTable(result, ["open"])));
    return 0;
  } catch (error) {
    await Deno.stderr.write(encoder.encode(`scanner: error: ${errorMessage(error)}\n`));
    return 1;
  }
}
