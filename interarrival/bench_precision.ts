/**
 * The precision part of `interarrival bench`: a UDP run at a high packet rate
 * (loss, reordering and duplicates must come out exact on loopback), and the KS
 * check of exponential gaps with a 1 ms mean over UDP and over TCP, on receive
 * times and on the send times the messages carry.
 *
 * @module
 */
import { parseDistribution } from "./distributions.ts";
import { measureReception } from "./server.ts";
import { runClient } from "./client.ts";
import { runCheck } from "./check.ts";
import type { BenchHooks } from "./bench.ts";

/** One UDP rate run. */
export interface UdpRateRow {
  engine: string;
  rate: number;
  seconds: number;
  bytes: number;
  sent: number;
  received: number;
  /** sent − received − send errors: what the loss report must say. */
  expectedLost: number;
  lost: number;
  reordered: number;
  duplicates: number;
  kernelDrops: number | null;
  sendErrors: number;
  achievedRate: number;
  errorP50: number;
  errorP99: number;
}

/** One KS run. */
export interface KsRow {
  protocol: "tcp" | "udp";
  meanMs: number;
  events: number;
  receiveKsP: number | null;
  carriedKsP: number | null;
  clientKsP: number | null;
  passed: boolean;
}

/** Sends `rate` datagrams/s of `bytes` bytes for `seconds` from one flow and counts them. */
export async function udpRate(
  rate: number,
  seconds: number,
  bytes: number,
  hooks: BenchHooks,
): Promise<UdpRateRow> {
  const intervals = Math.max(1, Math.round(rate * seconds)) - 1;
  const { sent: client, received } = await measureReception(
    { mode: "async", protocol: "udp", entry: hooks.entry, keepSamples: false },
    intervals + 1,
    (port) =>
      runClient({
        host: "127.0.0.1",
        port,
        workers: 1,
        intervals,
        dist: parseDistribution("c", [rate]),
        sizeDist: parseDistribution("constant", [bytes]),
        protocol: "udp",
        seed: 1,
        entry: hooks.entry,
        signal: hooks.signal,
        keepRecords: 0,
      }),
    seconds * 1000 + 30_000,
  );
  const s = received.summary;
  const span = client.senders[0].lastSendMs;
  return {
    engine: s.udpEngine ?? "",
    rate,
    seconds,
    bytes,
    sent: client.overall.messages,
    received: s.messages,
    expectedLost: client.overall.messages - s.messages,
    lost: s.lost,
    reordered: s.reordered,
    duplicates: s.duplicates,
    kernelDrops: s.kernelDrops,
    sendErrors: client.overall.sendErrors,
    achievedRate: Math.round(client.overall.messages / (span / 1000)),
    errorP50: client.overall.error.p50,
    errorP99: client.overall.error.p99,
  };
}

/** KS check of exponential gaps (mean `meanMs`) over one protocol. */
export async function ksRun(
  protocol: "tcp" | "udp",
  meanMs: number,
  events: number,
  hooks: BenchHooks,
): Promise<KsRow> {
  const result = await runCheck({
    dist: parseDistribution("e", [1000 / meanMs]),
    intervals: events,
    workers: 1,
    mode: "async",
    protocol,
    seed: 42,
    entry: hooks.entry,
    signal: hooks.signal,
    priority: hooks.priority,
  });
  const p = (fit: typeof result.fit) => (fit.ks ? Number(fit.ks.pValue.toPrecision(3)) : null);
  return {
    protocol,
    meanMs,
    events,
    receiveKsP: p(result.fit),
    carriedKsP: p(result.carriedFit),
    clientKsP: p(result.clientFit),
    passed: result.passed,
  };
}
