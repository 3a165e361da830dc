/**
 * Multi-flow scripts (`client --flows FILE`, as ITGSend's script mode): one
 * line per flow with that flow's own options, the others taken from the command
 * line. Pure: parses text into flow settings.
 *
 * ```text
 * # destination, protocol, gaps, sizes, stop, start delay
 * -s 127.0.0.1 -P 9000 --protocol udp -C 1000 --size-dist normal --size-param 512 --size-param 64 -t 5
 * -s 127.0.0.1 -P 9001 -d e -p 200 -n 1000 --delay 2
 * ```
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";
import { type DistributionSpec, parseDistribution } from "./distributions.ts";

/** Everything that can differ between flows. */
export interface FlowSettings {
  host: string;
  port: number;
  protocol: "tcp" | "udp";
  dist: DistributionSpec;
  sizeDist: DistributionSpec | null;
  bitrate: number | null;
  /** Intervals (the flow sends intervals + 1 messages unless the duration ends it). */
  intervals: number;
  durationMs: number | null;
  startDelayMs: number;
}

/** Intervals when only a duration stops a flow. */
export const UNLIMITED = 100_000_000;

/** Parses a bitrate such as `10M`, `512k`, `1.5G` or `64000` into bits per second. */
export function parseBitrate(text: string, what = "--bitrate"): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:bps|b\/s)?$/.exec(text.trim());
  const scale = { "": 1, k: 1e3, m: 1e6, g: 1e9 }[match?.[2].toLowerCase() ?? ""] ?? 1;
  const value = match ? Number(match[1]) * scale : NaN;
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new UsageError(
      `Invalid ${what} '${text}': expected bits per second such as 64000, 512k, 10M or 1G`,
    );
  }
  return value;
}

/** Parses a positive number of seconds into milliseconds. */
export function parseSeconds(text: string, what: string, allowZero = false): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) {
    throw new UsageError(`Invalid ${what} '${text}': expected seconds ${allowZero ? "≥" : ">"} 0`);
  }
  return n * 1000;
}

function parseCount(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
    throw new UsageError(`Invalid ${what} '${text}': expected a whole number ≥ 0`);
  }
  return n;
}

function parseNumber(text: string, what: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`Invalid ${what} '${text}': expected a number`);
  }
  return n;
}

/** A flow line's short options and the long ones they stand for. */
const SHORT_OPTIONS: Record<string, string> = {
  "-s": "--server",
  "-P": "--port",
  "-d": "--dist",
  "-p": "--param",
  "-C": "--rate",
  "-b": "--bitrate",
  "-n": "--intervals",
  "-t": "--duration",
};

/** Parses the flow options of one script line over `defaults`. */
export function parseFlowLine(line: string, defaults: FlowSettings, where = "flow"): FlowSettings {
  const words = line.trim().split(/\s+/).filter((w) => w !== "");
  const flow = { ...defaults };
  let dist: string | null = null, params: number[] = [];
  let sizeDist: string | null = null, sizeParams: number[] = [];
  // What each option does with its value (`what` names it in errors).
  const set: Record<string, (value: string, what: string) => void> = {
    "--server": (value) => flow.host = value,
    "--port": (value, what) => {
      const port = parseCount(value, what);
      if (port < 1 || port > 65535) throw new UsageError(`${what} '${value}': expected 1..65535`);
      flow.port = port;
    },
    "--protocol": (value, what) => {
      if (value !== "tcp" && value !== "udp") {
        throw new UsageError(`${what} '${value}': expected tcp or udp`);
      }
      flow.protocol = value;
    },
    "--dist": (value) => [dist, params] = [value, []],
    "--param": (value, what) => params.push(parseNumber(value, what)),
    "--rate": (value, what) => [dist, params] = ["constant", [parseNumber(value, what)]],
    "--size-dist": (value) => [sizeDist, sizeParams] = [value, []],
    "--size-param": (value, what) => sizeParams.push(parseNumber(value, what)),
    "--bitrate": (value, what) => flow.bitrate = parseBitrate(value, what),
    "--intervals": (value, what) => flow.intervals = parseCount(value, what),
    "--duration": (value, what) => flow.durationMs = parseSeconds(value, what),
    "--delay": (value, what) => flow.startDelayMs = parseSeconds(value, what, true),
  };
  for (let i = 0; i < words.length; i += 2) {
    const option = words[i], value = words[i + 1];
    const apply = set[SHORT_OPTIONS[option] ?? option];
    if (!apply) {
      throw new UsageError(
        `${where}: unknown option '${option}' (a flow takes -s, -P, --protocol, -d, -p, -C, ` +
          `--size-dist, --size-param, -b, -n, -t, --delay)`,
      );
    }
    if (value === undefined) throw new UsageError(`${where}: option ${option} needs a value`);
    apply(value, `${where}: ${option}`);
  }
  // A duration without a count runs for the duration, as on the command line.
  if (words.includes("-t") || words.includes("--duration")) {
    if (!words.includes("-n") && !words.includes("--intervals")) flow.intervals = UNLIMITED;
  }
  if (dist !== null) flow.dist = parseDistribution(dist, params);
  if (sizeDist !== null) flow.sizeDist = parseDistribution(sizeDist, sizeParams);
  return flow;
}

/** Parses a whole script: one flow per line; blank lines and `#` comments are skipped. */
export function parseFlowScript(text: string, defaults: FlowSettings): FlowSettings[] {
  const flows: FlowSettings[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") continue;
    flows.push(parseFlowLine(line, defaults, `flow script line ${i + 1}`));
  }
  if (flows.length === 0) throw new UsageError("The flow script holds no flow (one line per flow)");
  if (flows.length > 10_000) {
    throw new UsageError(`The flow script holds ${flows.length} flows; at most 10,000`);
  }
  return flows;
}
