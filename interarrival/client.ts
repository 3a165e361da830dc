/**
 * The traffic generator: `workers` flows spread over `threads` Web Workers,
 * each worker running one scheduler for its flows (sender.ts), and the
 * summary of what they achieved.
 *
 * @module
 */
import { runAll } from "../shared/runner.ts";
import { taskOf } from "../shared/registry.ts";
import { registry } from "./registry.ts";
import type { FlowSettings } from "./flows.ts";
import { DEFAULT_KEEP_RECORDS, type SenderInput, type SenderResult } from "./sender.ts";
import { describeSizes } from "./sizes.ts";
import type { PriorityOutcome, SenderPriority } from "./priority.ts";
import { roundMs } from "../shared/clock.ts";
import { summarize, type Summary } from "../shared/stats.ts";
import { HdrHistogram } from "../shared/hdr_histogram.ts";
import { describeDistribution, type DistributionSpec } from "./distributions.ts";

export { DEFAULT_KEEP_RECORDS };
export type { SenderInput, SenderResult };

/** Options for {@linkcode runClient}. */
export interface ClientOptions {
  host: string;
  port: number;
  workers: number;
  intervals: number;
  dist: DistributionSpec;
  seed: number;
  verbose?: boolean;
  /** Web Workers to spread the senders over (default: one per sender, as the study). */
  threads?: number;
  connectTimeoutMs?: number;
  leadMs?: number;
  signal?: AbortSignal;
  /** Worker entry (default: the main module). */
  entry?: string | URL;
  protocol?: "tcp" | "udp";
  format?: "binary" | "text";
  sizeDist?: DistributionSpec | null;
  /** Bits per second (gaps follow the drawn sizes instead of `dist`). */
  bitrate?: number | null;
  durationMs?: number | null;
  /** One sender per flow with its own settings (a `--flows` script); replaces `workers`. */
  flows?: FlowSettings[];
  /** UDP: `deno` forces Deno's datagram API instead of FFI (default `auto`). */
  udpEngine?: "auto" | "deno";
  /** TCP: `deno` forces `Deno.connect` writes instead of FFI `send()` (default `auto`). */
  tcpEngine?: "auto" | "deno";
  /** Per-message records each sender keeps (default {@linkcode DEFAULT_KEEP_RECORDS}). */
  keepRecords?: number;
  /** Each sending thread's CPU priority (priority.ts; default `normal`). */
  priority?: SenderPriority;
}

/** Timing of one worker or of all of them. */
export interface TimingSummary {
  messages: number;
  requestedMeanMs: number;
  achievedMeanMs: number;
  /** (achieved − requested) / requested mean. */
  meanRelativeError: number;
  /** Send time minus deadline (ms). */
  error: Summary;
  coalesced: number;
  bytes: number;
  /** UDP datagrams the socket refused. */
  sendErrors: number;
}

/** What `client` reports. */
export interface ClientResult {
  dist: string;
  workers: number;
  threads: number;
  intervals: number;
  /** Each flow's duration limit (ms), if any. */
  durationMs: number | null;
  /** The size distribution, or the fixed default. */
  sizes: string;
  seed: number;
  overall: TimingSummary;
  perWorker: (TimingSummary & {
    worker: number;
    greeting: string;
    protocol: "tcp" | "udp";
    /** Which send path ran: `ffi` (libc) or `deno` (Deno's socket API). */
    engine: "ffi" | "deno";
    /** ms from the run's start to the flow's first deadline (its start delay, and start-up). */
    startMs: number;
    /** The priority its sending thread asked for and ran at. */
    priority: PriorityOutcome;
  })[];
  /** Raw results (gaps and errors), for `check` and `bench`. */
  senders: SenderResult[];
  elapsedMs: number;
}

/** Summarises the timing of some senders (every message, from their histograms). */
export function timingOf(results: SenderResult[]): TimingSummary {
  const errors = new HdrHistogram("us");
  let requestedSum = 0, requestedCount = 0, achievedSum = 0, achievedCount = 0, squares = 0;
  for (const r of results) {
    errors.merge(HdrHistogram.fromJSON(r.timing.errorUs));
    requestedSum += r.timing.requestedSum;
    requestedCount += r.timing.requestedCount;
    achievedSum += r.timing.achievedSum;
    achievedCount += r.timing.achievedCount;
    squares += r.timing.errorSquaresUs;
  }
  const requestedMean = requestedSum / requestedCount;
  const achievedMean = achievedSum / achievedCount;
  return {
    messages: results.reduce((sum, r) => sum + r.messages, 0),
    requestedMeanMs: roundMs(requestedMean),
    achievedMeanMs: roundMs(achievedMean),
    meanRelativeError: Math.round(((achievedMean - requestedMean) / requestedMean) * 1e6) / 1e6,
    error: errorSummary(errors, squares),
    coalesced: results.reduce((sum, r) => sum + r.coalesced, 0),
    bytes: results.reduce((sum, r) => sum + r.bytes, 0),
    sendErrors: results.reduce((sum, r) => sum + r.sendErrors, 0),
  };
}

/** Summary in ms of a histogram of microseconds (percentiles within 1/128). */
function errorSummary(h: HdrHistogram, squaresUs: number): Summary {
  const n = h.count;
  if (n === 0) return summarize([]);
  const ms = (us: number) => roundMs(us / 1000);
  const variance = n > 1 ? Math.max(0, (squaresUs - n * h.mean * h.mean) / (n - 1)) : 0;
  return {
    count: n,
    mean: ms(h.mean),
    stddev: ms(Math.sqrt(variance)),
    min: ms(h.min),
    p50: ms(h.percentile(50)),
    p95: ms(h.percentile(95)),
    p99: ms(h.percentile(99)),
    max: ms(h.max),
  };
}

/** Runs every sender in Web Workers and summarises what they achieved. */
export async function runClient(options: ClientOptions): Promise<ClientResult> {
  const started = performance.now();
  const flows: FlowSettings[] = options.flows ?? Array.from({ length: options.workers }, () => ({
    host: options.host,
    port: options.port,
    protocol: options.protocol ?? "tcp",
    dist: options.dist,
    sizeDist: options.sizeDist ?? null,
    bitrate: options.bitrate ?? null,
    intervals: options.intervals,
    durationMs: options.durationMs ?? null,
    startDelayMs: 0,
  }));
  const workers = flows.length;
  const threads = Math.max(1, Math.min(workers, options.threads ?? workers));
  const inputs: SenderInput[] = flows.map((flow, i) => ({
    ...flow,
    worker: i + 1,
    format: options.format ?? "binary",
    udpEngine: options.udpEngine ?? "auto",
    tcpEngine: options.tcpEngine ?? "auto",
    keepRecords: options.keepRecords,
    priority: options.priority ?? "normal",
    runStartedAt: performance.timeOrigin + started,
    seed: options.seed,
    verbose: options.verbose ?? false,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    leadMs: options.leadMs ?? 20,
  }));
  // One task per Web Worker, each with its share of the flows (flow i in group i mod threads).
  const groups: SenderInput[][] = Array.from({ length: threads }, () => []);
  inputs.forEach((input, i) => groups[i % threads].push(input));
  const outcomes = await runAll(taskOf(registry, "interarrival.senders"), groups, {
    mode: "thread",
    workers: threads,
    concurrency: 1,
    batch: 1,
    signal: options.signal,
    entry: options.entry,
  });
  const senders = outcomes.flatMap((outcome) => (outcome as { value: SenderResult[] }).value)
    .sort((a, b) => a.worker - b.worker);
  return {
    dist: describeDistribution(options.dist),
    workers,
    threads,
    intervals: options.intervals,
    durationMs: options.durationMs ?? null,
    sizes: options.sizeDist ? describeSizes(options.sizeDist) : "64 B",
    seed: options.seed,
    overall: timingOf(senders),
    perWorker: senders.map((s) => ({
      worker: s.worker,
      greeting: s.greeting,
      protocol: s.protocol,
      engine: s.engine,
      startMs: roundMs(s.firstDeadlineAt - (performance.timeOrigin + started)),
      priority: s.priority,
      ...timingOf([s]),
    })),
    senders,
    elapsedMs: roundMs(performance.now() - started),
  };
}
