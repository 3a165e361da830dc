/**
 * The traffic generator: `workers` senders, each with its own TCP connection,
 * each sending `Worker W, Event E, Timestamp T` lines at absolute deadlines
 * (start + the sum of the drawn gaps), so timer lateness never accumulates.
 * Senders always run in Web Workers (`runTasks` in thread mode).
 *
 * @module
 */
import { defineTask, runAll } from "../shared/runner.ts";
import type { FlowSettings } from "./flows.ts";
import { waiterFor } from "./waiters.ts";
import { openTcp, openUdp } from "./links.ts";
import { describeSizes, sizeDrawer } from "./sizes.ts";

import { roundMs, sleep } from "../shared/clock.ts";
import { summarize, type Summary } from "../shared/stats.ts";
import { HdrHistogram, type HdrHistogramData } from "../shared/hdr_histogram.ts";
import {
  describeDistribution,
  type DistributionSpec,
  sampler,
  seededRandom,
  workerSeed,
} from "./distributions.ts";
import {
  DEFAULT_MAX_LINE,
  encodeHeader,
  FLAG_LAST,
  formatEvent,
  HEADER_SIZE,
  MAX_UDP_PAYLOAD,
} from "./protocol.ts";

/** Input of one sender task. */
export interface SenderInput {
  /** Worker number, from 1 (as in the study's messages); also the flow id. */
  worker: number;
  host: string;
  port: number;
  /** `udp`: one datagram per message, no greeting awaited (default `tcp`). */
  protocol?: "tcp" | "udp";
  /** `text`: the study's lines; `binary` (default): header and padding. */
  format?: "binary" | "text";
  /** UDP: `deno` forces Deno's datagram API instead of FFI `sendmmsg` (default `auto`). */
  udpEngine?: "auto" | "deno";
  /** TCP: `deno` forces `Deno.connect` writes instead of FFI `send()` (default `auto`). */
  tcpEngine?: "auto" | "deno";
  dist: DistributionSpec;
  /** Message sizes (bytes, binary format); default 64 bytes. */
  sizeDist?: DistributionSpec | null;
  /** Bits per second: each gap is the drawn size's time at this rate (replaces `dist`). */
  bitrate?: number | null;
  /** Inter-event intervals: the sender sends `intervals + 1` messages (unless `durationMs` ends it first). */
  intervals: number;
  /** Stop sending at this many ms after the first message. */
  durationMs?: number | null;
  /** Milliseconds to wait before the first message (multi-flow scripts). */
  startDelayMs?: number;
  /** Epoch ms the run started (the start delay counts from it, whenever this Web Worker began). */
  runStartedAt?: number;
  seed: number;
  verbose: boolean;
  connectTimeoutMs: number;
  /** Milliseconds between reading the greeting and the first message. */
  leadMs: number;
  /** Alone in its Web Worker: it may block the thread while it waits. */
  exclusive: boolean;
  /** Per-message records (gaps, errors, deadlines, sizes) kept; the summaries count every message. */
  keepRecords?: number;
}

/** Timing over every message of a sender, whatever `keepRecords` kept (JSON). */
export interface SenderTiming {
  requestedSum: number;
  requestedCount: number;
  achievedSum: number;
  achievedCount: number;
  /** Send time − deadline, microseconds. */
  errorUs: HdrHistogramData;
  errorSquaresUs: number;
}

/** What one sender measured. */
export interface SenderResult {
  worker: number;
  protocol: "tcp" | "udp";
  /** Which send path ran: `ffi` (libc) or `deno` (Deno's socket API). */
  engine: "ffi" | "deno";
  greeting: string;
  messages: number;
  bytes: number;
  /** Every message's timing, summarised. */
  timing: SenderTiming;
  /** When the last message went out, ms after the first deadline. */
  lastSendMs: number;
  /** Epoch ms of the first message's deadline. */
  firstDeadlineAt: number;
  /** Drawn gaps (ms), the first `keepRecords`. */
  requested: number[];
  /** Gaps between actual sends (ms). */
  achieved: number[];
  /** Send time minus deadline for every message (ms, ≥ 0). */
  errors: number[];
  /** Deadline of every message, ms after the first. */
  deadlines: number[];
  /** Sizes of the messages (bytes), binary format. */
  sizes: number[];
  /** Messages sent together with an earlier one because the sender fell behind. */
  coalesced: number;
  /** UDP datagrams the socket refused to send. */
  sendErrors: number;
  /** The lines sent, when verbose. */
  sent?: string[];
}

const encoder = new TextEncoder();

/** Per-message records a sender keeps by default (its summaries count every message). */
export const DEFAULT_KEEP_RECORDS = 10_000;

/** Runs one sender: connect (and read the greeting), send on schedule, close. */
export async function runSender(input: SenderInput, signal?: AbortSignal): Promise<SenderResult> {
  const protocol = input.protocol ?? "tcp";
  const binary = (input.format ?? "binary") === "binary";
  if (input.startDelayMs) {
    const startAt = (input.runStartedAt ?? performance.timeOrigin + performance.now()) +
      input.startDelayMs;
    await sleep(startAt - (performance.timeOrigin + performance.now()), signal);
  }
  const link = protocol === "udp" ? openUdp(input) : await openTcp(input, signal);
  const waiter = waiterFor(input.exclusive);
  try {
    const maxSize = protocol === "udp" ? MAX_UDP_PAYLOAD : DEFAULT_MAX_LINE;
    // Warm the hot path (sampler, formatting, encoding) before the clock starts, so
    // compiling it does not delay the first messages.
    const warm = sampler(input.dist, seededRandom(input.seed ^ 0x5bd1e995));
    const scratch = new Uint8Array(HEADER_SIZE);
    for (let i = 0; i < 2000; i++) {
      const t = warm();
      if (binary) encodeHeader(scratch, { flags: 0, length: 64, flow: 1, sequence: i, sentUs: t });
      else encoder.encode(formatEvent(input.worker, i, t));
    }
    const draw = sampler(input.dist, seededRandom(workerSeed(input.seed, input.worker)));
    const drawSize = sizeDrawer(input.sizeDist, workerSeed(input.seed, input.worker), maxSize);
    const bitsPerMs = input.bitrate ? input.bitrate / 1000 : 0;
    const total = input.intervals + 1;
    const durationMs = input.durationMs ?? Infinity;
    const requested: number[] = [];
    const achieved: number[] = [];
    const errors: number[] = [];
    const deadlines: number[] = [];
    const sizes: number[] = [];
    const sent: string[] | undefined = input.verbose ? [] : undefined;
    const keep = input.keepRecords ?? DEFAULT_KEEP_RECORDS;
    const errorUs = new HdrHistogram("us");
    let errorSquaresUs = 0, requestedSum = 0, requestedCount = 0, achievedSum = 0;
    let achievedCount = 0, lastSend = NaN;
    let coalesced = 0;
    let bytesSent = 0;
    let buffer = new Uint8Array(64 * 1024);
    const start = performance.now() + input.leadMs;
    let deadline = start;
    let offset = 0;
    let previousSend = NaN;
    let event = 0;
    let done = false;
    let nextSize = drawSize();
    while (!done) {
      signal?.throwIfAborted();
      await waiter.until(deadline);
      // Send every message that is due now in one write: when the sender falls
      // behind it catches up at once instead of drifting.
      let text = "";
      let used = 0;
      const due: number[] = [];
      const dueSizes: number[] = [];
      const timestamp = performance.timeOrigin + performance.now();
      while (!done && deadline <= performance.now()) {
        event++;
        const size = binary ? nextSize : 0;
        // The gap after this message decides whether it is the last one.
        const gap = bitsPerMs > 0 ? (size * 8) / bitsPerMs : draw();
        // Offsets from the start are summed apart from it, so that float rounding in
        // start + offset cannot add or drop a message at the duration's end.
        done = event >= total || offset + gap >= durationMs;
        if (binary) {
          if (used + size > buffer.length) {
            const grown = new Uint8Array(Math.max(buffer.length * 2, used + size));
            grown.set(buffer.subarray(0, used));
            buffer = grown;
          }
          encodeHeader(buffer.subarray(used), {
            flags: done ? FLAG_LAST : 0,
            length: size,
            flow: input.worker,
            sequence: event - 1,
            sentUs: timestamp * 1000,
          });
          used += size;
          dueSizes.push(size);
          if (sizes.length < keep) sizes.push(size);
          if (sent && sent.length < keep) {
            sent.push(`flow ${input.worker} sequence ${event - 1}, ${size} bytes`);
          }
          nextSize = drawSize();
        } else {
          const line = formatEvent(input.worker, event, timestamp);
          text += line + "\n";
          if (sent && sent.length < keep) sent.push(line);
        }
        due.push(deadline);
        if (!done) {
          requestedSum += gap;
          requestedCount++;
          if (requested.length < keep) requested.push(roundMs(gap));
          offset += gap;
          deadline = start + offset;
        }
      }
      coalesced += due.length - 1;
      // The send time is when the write is issued: Deno makes the write syscall at
      // once, and awaiting its promise only adds an event-loop turn.
      const bytes = binary ? buffer.subarray(0, used) : encoder.encode(text);
      const sentAt = performance.now();
      await link.send(bytes, binary ? dueSizes : [bytes.length]);
      bytesSent += bytes.length;
      for (const d of due) {
        const errorMicro = Math.round((sentAt - d) * 1000);
        errorUs.record(errorMicro);
        errorSquaresUs += errorMicro * errorMicro;
        if (!Number.isNaN(previousSend)) {
          achievedSum += sentAt - previousSend;
          achievedCount++;
        }
        if (errors.length < keep) {
          errors.push(roundMs(sentAt - d));
          deadlines.push(roundMs(d - start));
          if (!Number.isNaN(previousSend)) achieved.push(roundMs(sentAt - previousSend));
        }
        previousSend = sentAt;
      }
      lastSend = sentAt;
    }
    return {
      worker: input.worker,
      protocol,
      engine: link.engine,
      greeting: link.greeting,
      messages: event,
      timing: {
        requestedSum,
        requestedCount,
        achievedSum,
        achievedCount,
        errorUs: errorUs.toJSON(),
        errorSquaresUs,
      },
      lastSendMs: roundMs(lastSend - start),
      firstDeadlineAt: roundMs(performance.timeOrigin + start),
      bytes: bytesSent,
      requested,
      achieved,
      errors,
      deadlines,
      sizes,
      coalesced,
      sendErrors: link.sendErrors,
      ...(sent ? { sent } : {}),
    };
  } finally {
    waiter.close();
    link.close();
  }
}

/** The sender as a runner task, so it runs in Web Workers. */
export const senderTask = defineTask<SenderInput, SenderResult>(
  "interarrival.sender",
  (input, context) => runSender(input, context.signal),
);

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
    /** ms from the run's start to the flow's first deadline (its start delay, and start-up). */
    startMs: number;
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
    runStartedAt: performance.timeOrigin + started,
    seed: options.seed,
    verbose: options.verbose ?? false,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    leadMs: options.leadMs ?? 20,
    exclusive: threads >= workers,
  }));
  const outcomes = await runAll(senderTask, inputs, {
    mode: "thread",
    workers: threads,
    concurrency: Math.ceil(workers / threads),
    batch: 1,
    signal: options.signal,
    entry: options.entry,
  });
  const senders = outcomes.map((outcome) => (outcome as { value: SenderResult }).value);
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
      startMs: roundMs(s.firstDeadlineAt - (performance.timeOrigin + started)),
      ...timingOf([s]),
    })),
    senders,
    elapsedMs: roundMs(performance.now() - started),
  };
}
