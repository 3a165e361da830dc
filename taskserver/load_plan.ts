/**
 * The load generator's plan, as pure functions: the target `HOST:PORT`, the
 * request mix (`--mix 1:30,2:30,3:40`, a deterministic weighted rotation),
 * payload templates (`{n}` the request's number on its connection, `{c}` the
 * connection's number), the open-loop schedule and how a run is shared out over
 * generator workers. No sockets here.
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";
import { processRequest } from "./ops.ts";
import type { EngineChoice } from "./ffi_libc.ts";

/** The study's benchmark payload (its client sent it bare; ours send `3|` before it). */
export const STUDY_PAYLOAD = "BenchmarkTestString123";

/** How requests and replies are delimited on the wire. */
export type Framing = "line" | "raw";

/** One entry of the request mix: a choice and its weight. */
export interface MixEntry {
  /** `1` swap case, `2` evaluate, `3` reverse (sent as is: other servers may know others). */
  choice: string;
  weight: number;
}

/** The settings a run's options and its generators' plans share. */
export interface LoadShape {
  host: string;
  port: number;
  /** Connections in the whole run. */
  connections: number;
  /** Requests per second in the whole run (open loop), or null (closed loop). */
  rate: number | null;
  /** Requests in flight per connection (1: send the next once the answer is in). */
  pipeline: number;
  /** Milliseconds before measuring starts (requests sent then are not counted). */
  warmupMs: number;
  /** Milliseconds of measuring, or null (until `requests`). */
  durationMs: number | null;
  /**
   * Measured requests: closed loop, this share's count; open loop, the whole
   * run's (each connection takes its part of the schedule). Null: until `durationMs`.
   */
  requests: number | null;
  /** A connection closes after this many requests, or null (it stays open). */
  requestsPerConnection: number | null;
  /** Milliseconds to wait for a connection or an answer before counting it failed. */
  timeoutMs: number;
  framing: Framing;
  /** Template for choices 1 and 3 (and any other but 2). */
  payload: string;
  /** Template for choice 2 (an expression). */
  expression: string;
  /** Compare every answer with our own server's answer (see ops.ts). */
  verify: boolean;
  /**
   * `ffi`: libc sockets (`ffi_burst.ts`, one-request clients only); `deno`:
   * `Deno.connect`; `auto` (default): `ffi` where it can run.
   */
  engine?: EngineChoice;
}

/** Everything a generator (one isolate's share of a run) needs; JSON-serialisable. */
export interface LoadPlan extends LoadShape {
  /** Global numbers of the connections this share opens. */
  connectionIds: number[];
  /** The rotation of choices (see {@linkcode mixCycle}). */
  cycle: string[];
  /** Epoch milliseconds at which every share starts (so several isolates start together). */
  startAt: number;
}

/** Parses `HOST:PORT` (`[v6]:PORT` too); the error says what is wrong. */
export function parseTarget(text: string): { host: string; port: number } {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:\s]+):(\d+)$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(
      `Invalid target '${text}': expected HOST:PORT, e.g. 127.0.0.1:65432 or [::1]:65432`,
    );
  }
  return { host: match[1], port };
}

/** Parses `--mix 1:30,2:30,3:40` (a choice alone has weight 1). */
export function parseMix(text: string): MixEntry[] {
  const entries: MixEntry[] = [];
  for (const part of text.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const m = /^([^:|\s]+)(?::(\d+))?$/.exec(part);
    const weight = m?.[2] === undefined ? 1 : Number(m[2]);
    if (!m || !Number.isSafeInteger(weight) || weight < 1 || weight > 1_000_000) {
      throw new UsageError(
        `Invalid --mix entry '${part}': expected CHOICE:WEIGHT, e.g. --mix 1:30,2:30,3:40`,
      );
    }
    if (entries.some((e) => e.choice === m[1])) {
      throw new UsageError(`Invalid --mix: choice '${m[1]}' is given twice`);
    }
    entries.push({ choice: m[1], weight });
  }
  if (entries.length === 0) {
    throw new UsageError("Invalid --mix '': expected CHOICE:WEIGHT, e.g. --mix 1:30,2:30,3:40");
  }
  return entries;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * The mix as one rotation of choices, weights reduced by their greatest common
 * divisor and interleaved (smooth weighted round robin), so every full turn
 * holds each choice exactly in proportion and equal choices are spread out:
 * `1:30,2:30,3:40` gives `3,1,2,3,1,2,3,1,3,2`... (10 entries).
 */
export function mixCycle(mix: MixEntry[]): string[] {
  const divisor = mix.reduce((g, e) => gcd(g, e.weight), 0);
  const weights = mix.map((e) => e.weight / divisor);
  const total = weights.reduce((s, w) => s + w, 0);
  if (total > 100_000) {
    throw new UsageError("Invalid --mix: the weights reduce to a rotation over 100000 long");
  }
  const current = weights.map(() => 0);
  const cycle: string[] = [];
  for (let i = 0; i < total; i++) {
    let best = 0;
    for (let j = 0; j < weights.length; j++) {
      current[j] += weights[j];
      if (current[j] > current[best]) best = j;
    }
    current[best] -= total;
    cycle.push(mix[best].choice);
  }
  return cycle;
}

/** Shares of each choice in a rotation, in percent (for the report). */
export function mixShares(cycle: string[]): Record<string, number> {
  const shares: Record<string, number> = {};
  for (const c of cycle) shares[c] = (shares[c] ?? 0) + 100 / cycle.length;
  return shares;
}

/** Expands `{n}` (request number on the connection) and `{c}` (connection number). */
export function expandTemplate(template: string, n: number, c: number): string {
  if (template.indexOf("{") === -1) return template;
  return template.replaceAll("{n}", String(n)).replaceAll("{c}", String(c));
}

/** The request text (without newline) number `n` of connection `c`. */
export function requestText(plan: LoadPlan, n: number, c: number): string {
  const choice = plan.cycle[(n + c) % plan.cycle.length];
  if (plan.framing === "raw") return expandTemplate(plan.payload, n, c);
  const template = choice === "2" ? plan.expression : plan.payload;
  return `${choice}|${expandTemplate(template, n, c)}`;
}

/** What our own server answers to a request (raw framing: the study's server reverses). */
export function expectedReply(plan: LoadPlan, request: string): string {
  return plan.framing === "raw"
    ? processRequest(request, { defaultOp: "reverse" })
    : processRequest(request);
}

/**
 * Open loop: milliseconds after the start at which request `n` of connection `c`
 * is due. Request number `n·C + c` of the whole run is due at `(n·C + c) / R`
 * seconds: one absolute schedule spread evenly over the connections.
 */
export function scheduledAt(n: number, c: number, connections: number, rate: number): number {
  return ((n * connections + c) * 1000) / rate;
}

/**
 * Open loop: the first request number of connection `c` due at or after `ms`
 * (the first one measured after a warmup of `ms`).
 */
export function firstDueAtOrAfter(
  ms: number,
  c: number,
  connections: number,
  rate: number,
): number {
  return Math.max(0, Math.ceil(((ms * rate) / 1000 - c) / connections));
}

/** Splits `total` into `parts` shares that differ by at most one, larger first. */
export function splitEvenly(total: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0),
  );
}

/**
 * Open loop with `--requests N`: how many measured requests connection `c` sends,
 * so that the run sends requests number `w … w+N−1` of the schedule, where `w` is
 * the first one due after the warmup.
 */
export function openLoopCount(
  requests: number,
  warmupMs: number,
  c: number,
  connections: number,
  rate: number,
): number {
  const first = Math.ceil((warmupMs * rate) / 1000);
  // Global numbers g in [first, first + requests) with g ≡ c (mod C).
  const count = (end: number) => Math.max(0, Math.ceil((end - c) / connections));
  return count(first + requests) - count(first);
}

/**
 * The whole run's plan split over `workers` generator isolates (connection c
 * goes to c mod W). Closed loop: `requests` becomes the share's count (its
 * connections draw from it). Open loop: `requests` stays the run's count, since
 * each connection derives its own exact count from the one schedule
 * ({@linkcode openLoopCount}).
 */
export function sharePlan(plan: LoadPlan, workers: number): LoadPlan[] {
  const w = Math.max(1, Math.min(workers, plan.connections));
  const requestShares = plan.requests === null || plan.rate !== null
    ? null
    : splitEvenly(plan.requests, w);
  return Array.from({ length: w }, (_, i) => ({
    ...plan,
    connectionIds: plan.connectionIds.filter((c) => c % w === i),
    requests: requestShares?.[i] ?? plan.requests,
  }));
}
