/**
 * `ipcbench stream`: one-way throughput (MB/s and messages/s, as netperf's
 * TCP_STREAM and ipc-bench's throughput runs) and latency under load (sockperf's
 * `under-load`: while the stream flows, every K-th message asks for an answer,
 * and those answers' round trips are the latency). Each message carries a
 * counter that the sink checks; the run fails on the first wrong one.
 *
 * Transports: the child channel over each kind (`pipes`, `channel-unix`,
 * `channel-shm`; the sink acknowledges every `window` messages so the sender
 * never queues more than two windows), and raw `tcp` and `unix` sockets (the
 * kernel's buffers are the window). Returns data; never prints.
 *
 * @module
 */
import { type Service, spawn, type Spawned } from "../shared/runtime.ts";
import { serviceOf } from "../shared/registry.ts";
import { HdrHistogram, type PercentileSummary } from "../shared/hdr_histogram.ts";
import { UsageError } from "../shared/errors.ts";
import { median } from "../shared/stats.ts";
import { newMessage, readCounter, stampCounter } from "./message.ts";
import { hdrSummaryUs, type MedianCI, medianConfidence } from "./measure.ts";
import { type Pin, pinCpus, pinMainThread, readPressure } from "./system.ts";
import { CHANNEL_OF, readFull, type Transport, withTimeout, writeFull } from "./transports.ts";

/** Transports `stream` runs. */
export const STREAM_TRANSPORTS = ["pipes", "channel-unix", "channel-shm", "tcp", "unix"] as const;
/** One of them. */
export type StreamTransport = typeof STREAM_TRANSPORTS[number];

/** Parses `--transports` for `stream`. */
export function parseStreamTransports(text: string): StreamTransport[] {
  const parts = text.split(",").map((p) => p.trim().toLowerCase()).filter((p) => p !== "");
  if (parts.includes("all")) return [...STREAM_TRANSPORTS];
  if (
    parts.length === 0 ||
    parts.some((p) => !(STREAM_TRANSPORTS as readonly string[]).includes(p))
  ) {
    throw new UsageError(
      `Invalid --transports '${text}': expected all or some of ${STREAM_TRANSPORTS.join(", ")}`,
    );
  }
  return [...new Set(parts)] as StreamTransport[];
}

interface SinkInit {
  transport: StreamTransport;
  size: number;
  count: number;
  window: number;
  /** Every this many messages asks for an answer (0: none). */
  pingEvery: number;
  port?: number;
  path?: string;
  timeoutMs: number;
}

/** What a sink reports. */
interface SinkReport {
  received: number;
}

function isPing(counter: number, every: number): boolean {
  return every > 0 && counter % every === 0;
}

/** The receiving child of a stream (registered in registry.ts). */
export const sinkService: Service = async (channel, rawInit) => {
  const init = rawInit as SinkInit;
  let expected = 1;
  const check = (bytes: Uint8Array) => {
    const got = readCounter(bytes, init.size);
    if (got !== expected) {
      throw new Error(`stream message ${expected}: expected counter ${expected}, got ${got}`);
    }
    expected++;
    return got;
  };
  if (CHANNEL_OF[init.transport as Transport]) {
    channel.send({ ready: true });
    for (let n = 1; n <= init.count; n++) {
      const message = await channel.receive();
      if (message === null) throw new Error(`the stream ended after ${n - 1} messages`);
      const counter = check(message.bytes ?? new Uint8Array(0));
      if (isPing(counter, init.pingEvery)) channel.send({ ping: counter }, message.bytes);
      if (n % init.window === 0 || n === init.count) channel.send({ ack: n });
    }
    return { received: init.count } satisfies SinkReport;
  }
  const conn = init.transport === "tcp"
    ? await Deno.connect({ hostname: "127.0.0.1", port: init.port! })
    : await Deno.connect({ transport: "unix", path: init.path! });
  if (init.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
  channel.send({ ready: true });
  const buf = new Uint8Array(init.size);
  try {
    for (let n = 1; n <= init.count; n++) {
      if (!(await readFull(conn, buf))) throw new Error(`the stream ended after ${n - 1} messages`);
      const counter = check(buf);
      if (isPing(counter, init.pingEvery)) await writeFull(conn, buf);
    }
    // One byte: everything arrived.
    await writeFull(conn, new Uint8Array([1]));
  } finally {
    conn.close();
  }
  return { received: init.count } satisfies SinkReport;
};

/** One stream case. */
export interface StreamPlan {
  transport: StreamTransport;
  size: number;
  /** Messages per run. */
  count: number;
  runs: number;
  pin: Pin;
  /** Every this many messages asks for an answer (0: throughput only). */
  pingEvery: number;
  window: number;
  timeoutMs: number;
  entry?: string | URL;
}

/** What one stream case measured. */
export interface StreamResult {
  transport: StreamTransport;
  channel: string | null;
  size: number;
  pin: Pin;
  pingEvery: number;
  runs: { messages: number; wallMs: number; mbPerSec: number; messagesPerSec: number }[];
  median: { mbPerSec: number; messagesPerSec: number };
  medianCI: MedianCI;
  /** Round trips of the answered messages while the stream flowed, microseconds. */
  underLoadUs: PercentileSummary | null;
  pressureAtStart: number | null;
}

async function runOnce(
  plan: StreamPlan,
  cpus: { pinger?: string; echo?: string },
  latency: HdrHistogram,
): Promise<{ wallMs: number; channel: string | null }> {
  const init: SinkInit = {
    transport: plan.transport,
    size: plan.size,
    count: plan.count,
    window: plan.window,
    pingEvery: plan.pingEvery,
    timeoutMs: plan.timeoutMs,
  };
  const channelKind = CHANNEL_OF[plan.transport as Transport];
  let listener: Deno.Listener | null = null;
  let dir: string | null = null;
  if (!channelKind) {
    if (plan.transport === "tcp") {
      listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      init.port = (listener.addr as Deno.NetAddr).port;
    } else {
      dir = await Deno.makeTempDir({ prefix: "ipcbench-stream-" });
      listener = Deno.listen({ transport: "unix", path: `${dir}/s.sock` });
      init.path = `${dir}/s.sock`;
    }
  }
  let sink: Spawned | null = null;
  let restore: string | undefined;
  try {
    const child = await spawn("process", {
      // The registry is loaded at call time: it imports this module.
      service: serviceOf((await import("./registry.ts")).registry, "ipcbench.sink"),
      init,
      entry: plan.entry,
      cpus: cpus.echo,
      channel: channelKind ?? "pipes",
    });
    sink = child;
    const ready = await withTimeout(child.channel.receive(), plan.timeoutMs, `${child.where}`);
    if (ready === null) throw new Error(`${child.where} ended before it was ready`);
    const conn = listener
      ? await withTimeout(listener.accept(), plan.timeoutMs, `${child.where} to connect`)
      : null;
    if (conn && plan.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
    if (cpus.pinger !== undefined) restore = await pinMainThread(cpus.pinger);
    const message = newMessage(plan.size, 1);
    const sentAt = new Map<number, number>();
    const t0 = performance.now();
    if (conn) {
      const answers = (async () => {
        const buf = new Uint8Array(plan.size);
        for (let i = plan.pingEvery; plan.pingEvery > 0 && i <= plan.count; i += plan.pingEvery) {
          if (!(await readFull(conn, buf))) throw new Error(`${child.where} closed the stream`);
          const counter = readCounter(buf, plan.size);
          latency.record(Math.round((performance.now() - sentAt.get(counter)!) * 1e6));
          sentAt.delete(counter);
        }
        if (!(await readFull(conn, new Uint8Array(1)))) throw new Error("no end-of-stream byte");
      })();
      for (let n = 1; n <= plan.count; n++) {
        stampCounter(message, n);
        if (isPing(n, plan.pingEvery)) sentAt.set(n, performance.now());
        await writeFull(conn, message);
      }
      await withTimeout(answers, plan.timeoutMs, `the end of the stream from ${child.where}`);
      conn.close();
    } else {
      let acked = 0;
      let wake: (() => void) | null = null;
      let failure: Error | null = null;
      child.done.catch((error) => (failure = error)).finally(() => wake?.());
      child.channel.listen((m) => {
        const data = m.data as { ack?: number; ping?: number };
        if (data.ack !== undefined) acked = data.ack;
        if (data.ping !== undefined) {
          latency.record(Math.round((performance.now() - sentAt.get(data.ping)!) * 1e6));
          sentAt.delete(data.ping);
        }
        const w = wake;
        wake = null;
        w?.();
      });
      const waitFor = (n: number) =>
        withTimeout(
          (async () => {
            while (acked < n) {
              if (failure) throw failure;
              await new Promise<void>((resolve) => (wake = resolve));
            }
          })(),
          plan.timeoutMs,
          `acknowledgements from ${child.where}`,
        );
      for (let n = 1; n <= plan.count; n++) {
        if (n - acked > 2 * plan.window) await waitFor(n - 2 * plan.window);
        stampCounter(message, n);
        if (isPing(n, plan.pingEvery)) sentAt.set(n, performance.now());
        child.channel.send(null, message);
      }
      await waitFor(plan.count);
      child.end();
    }
    const wallMs = performance.now() - t0;
    await withTimeout(child.done, plan.timeoutMs, `${child.where} to finish`);
    return {
      wallMs,
      channel: child.channelKind
        ? `${child.channelKind}${child.channelNote ? ` (${child.channelNote})` : ""}`
        : null,
    };
  } catch (error) {
    sink?.kill();
    throw error;
  } finally {
    if (restore !== undefined) await pinMainThread(restore);
    listener?.close();
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Measures one stream case (all its runs). */
export async function measureStream(plan: StreamPlan): Promise<StreamResult> {
  const cpus = pinCpus(plan.pin);
  const latency = new HdrHistogram("ns");
  const pressure = readPressure();
  const runs: StreamResult["runs"] = [];
  let channel: string | null = null;
  for (let r = 0; r < plan.runs; r++) {
    const once = await runOnce(plan, cpus, latency);
    channel = once.channel;
    const seconds = once.wallMs / 1000;
    runs.push({
      messages: plan.count,
      wallMs: Math.round(once.wallMs * 1000) / 1000,
      mbPerSec: Math.round((plan.count * plan.size) / seconds / 1e4) / 100,
      messagesPerSec: Math.round(plan.count / seconds),
    });
  }
  return {
    transport: plan.transport,
    channel,
    size: plan.size,
    pin: plan.pin,
    pingEvery: plan.pingEvery,
    runs,
    median: {
      mbPerSec: median(runs.map((r) => r.mbPerSec)),
      messagesPerSec: Math.round(median(runs.map((r) => r.messagesPerSec))),
    },
    medianCI: medianConfidence(runs.map((r) => r.mbPerSec)),
    underLoadUs: latency.count > 0 ? hdrSummaryUs(latency) : null,
    pressureAtStart: pressure?.avg10 ?? null,
  };
}

/** Options for {@linkcode runStreams}. */
export interface StreamOptions {
  transports: StreamTransport[];
  sizes: number[];
  /** Messages per run (capped so a run moves at most `maxBytes`). */
  messages: number;
  maxBytes: number;
  runs: number;
  pins: Pin[];
  pingEvery: number;
  window: number;
  timeoutMs: number;
  entry?: string | URL;
  onProgress?: (index: number, total: number, label: string) => void;
}

/** Runs every transport × size × placement. */
export async function runStreams(options: StreamOptions): Promise<StreamResult[]> {
  const plan = options.pins.flatMap((pin) =>
    options.transports.flatMap((transport) =>
      options.sizes.map((size) => ({ transport, size, pin }))
    )
  );
  const results: StreamResult[] = [];
  for (const [index, item] of plan.entries()) {
    options.onProgress?.(index, plan.length, `${item.transport} ${item.size} B --pin ${item.pin}`);
    results.push(
      await measureStream({
        ...item,
        count: Math.max(1, Math.min(options.messages, Math.floor(options.maxBytes / item.size))),
        runs: options.runs,
        pingEvery: options.pingEvery,
        window: options.window,
        timeoutMs: options.timeoutMs,
        entry: options.entry,
      }),
    );
  }
  return results;
}

/** The human table of a stream run. */
export function streamTable(results: StreamResult[]): {
  title: string;
  columns: string[];
  rows: (string | number | null)[][];
} {
  return {
    title: "One-way streams (median of runs)" +
      (results.some((r) => r.underLoadUs)
        ? ", with round trips of answered messages under load"
        : ""),
    columns: [
      "transport",
      "channel",
      "pin",
      "size (B)",
      "messages",
      "MB/s",
      "msg/s",
      "MB/s CI (level)",
      "under load p50 µs",
      "p99 µs",
      "p99.9 µs",
      "PSI avg10 %",
    ],
    rows: results.map((r) => [
      r.transport,
      r.channel,
      r.pin,
      r.size,
      r.runs[0]?.messages ?? 0,
      r.median.mbPerSec,
      r.median.messagesPerSec,
      `${r.medianCI.low}–${r.medianCI.high} (${Math.round(r.medianCI.level * 1000) / 10}%)`,
      r.underLoadUs?.p50 ?? null,
      r.underLoadUs?.p99 ?? null,
      r.underLoadUs?.p999 ?? null,
      r.pressureAtStart,
    ]),
  };
}
