/**
 * The inter-arrival-time server: starts the connection handler of receiver.ts
 * in any mode through `shared/server.ts` (UDP through udp.ts), and a collector in
 * the serving isolate that merges what every worker and child measured.
 *
 * Never prints: verbose lines and connection events go to callbacks.
 *
 * @module
 */
import { serve } from "../shared/server.ts";
import { DEFAULT_MAX_LINE } from "./protocol.ts";
import { handlerOf } from "../shared/registry.ts";
import { TimeoutError } from "../shared/errors.ts";
import type { Mode } from "../shared/mode.ts";
import {
  type CollectorOptions,
  type ConnectionWithSamples,
  type MessageSample,
  ReceiverCollector,
  type ReceiverCollector as Collector,
  type ReceiverHooks,
} from "./collector.ts";
import { type ReceiverSummary, summarizeReceiver } from "./receiver_summary.ts";
import { startUdpReceiver, type UdpReceiver } from "./udp.ts";
import { registry } from "./registry.ts";
import type { ReceiverInit } from "./receiver.ts";

export * from "./collector.ts";
export * from "./receiver_summary.ts";
export type { ReceiverInit };

/** Options for {@linkcode startReceiver}. */
export interface ReceiverOptions extends CollectorOptions {
  hostname: string;
  port: number;
  mode: Mode;
  /** `udp`: one socket takes one message per datagram (default `tcp`). */
  protocol?: "tcp" | "udp";
  /** UDP: `deno` forces Deno's datagram API instead of FFI `recvmmsg` (default `auto`). */
  udpEngine?: "auto" | "deno";
  /** Pool size for thread and process modes. */
  workers?: number;
  /** thread/process: a worker or child per connection (the study's design). */
  perConnection?: boolean;
  verbose?: boolean;
  maxLine?: number;
  idleTimeoutMs?: number;
  /** Milliseconds open connections get when the server stops (default 1000). */
  graceMs?: number;
  /** Worker and child entry (default: the main module). */
  entry?: string | URL;
  /** Listen-queue capacity and connection bound (see `ServeOptions`). */
  backlog?: number;
  maxConnections?: number;
}

/** A running inter-arrival server. */
export interface Receiver {
  hostname: string;
  port: number;
  mode: Mode;
  protocol: "tcp" | "udp";
  collector: Collector;
  /** Stops the server (open connections get `graceMs`) and returns everything measured. */
  stop(): Promise<ReceiverResult>;
}

/** Everything a stopped server measured. */
export interface ReceiverResult {
  summary: ReceiverSummary;
  /** Connection records, with samples only when `keepSamples` was set. */
  connections: ConnectionWithSamples[];
  /** UDP message samples (only when `keepSamples` was set). */
  datagrams: MessageSample[];
}

/** Starts the server; resolves once it accepts connections (or datagrams). */
export async function startReceiver(
  options: ReceiverOptions,
  hooks: ReceiverHooks = {},
): Promise<Receiver> {
  const collector = new ReceiverCollector(hooks, options);
  const perConnection = options.perConnection ?? false;
  const protocol = options.protocol ?? "tcp";
  let close: () => Promise<void>;
  let bound: { hostname: string; port: number };
  try {
    if (protocol === "udp") {
      const udp: UdpReceiver = await startUdpReceiver(
        options.hostname,
        options.port,
        collector,
        options.entry,
        options.udpEngine,
      );
      bound = udp;
      collector.udpEngine = udp.engine;
      close = async () => {
        await udp.close();
        collector.kernelDrops = udp.kernelDrops();
      };
    } else {
      const server = await serve<ReceiverInit>({
        handler: handlerOf(registry, "interarrival.receiver"),
        mode: options.mode,
        hostname: options.hostname,
        port: options.port,
        workers: options.workers,
        perConnection,
        entry: options.entry,
        graceMs: options.graceMs,
        backlog: options.backlog,
        maxConnections: options.maxConnections,
        init: {
          verbose: options.verbose ?? false,
          maxLine: options.maxLine ?? DEFAULT_MAX_LINE,
          idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
        },
        onEvent: (event, source) => collector.add(event, source),
      });
      bound = server;
      close = () => server.close();
    }
  } catch (error) {
    options.log?.discard();
    throw error;
  }
  let result: Promise<ReceiverResult> | null = null;
  return {
    hostname: bound.hostname,
    port: bound.port,
    mode: options.mode,
    protocol,
    collector,
    stop: () =>
      result ??= close().then(() => {
        options.log?.close();
        return {
          summary: summarizeReceiver(collector, options.mode, perConnection, protocol),
          connections: collector.connections(),
          datagrams: collector.udpSamples,
        };
      }),
  };
}

/**
 * One measurement: starts a receiver on a free loopback port, runs `send` against
 * it, waits until `connections` connections have closed (at most `settleMs`), and
 * stops it, also when `send` fails. Returns what `send` returned and what the
 * server measured; the benches and `check` all measure this way.
 */
export async function measureReception<T>(
  options: Omit<ReceiverOptions, "hostname" | "port">,
  /** Connections to see closed (TCP), or messages to see (UDP). */
  connections: number,
  send: (port: number) => Promise<T>,
  settleMs = 20_000,
): Promise<{ sent: T; received: ReceiverResult }> {
  const receiver = await startReceiver({
    keepSamples: true,
    ...options,
    hostname: "127.0.0.1",
    port: 0,
  });
  let sent: T;
  let received: ReceiverResult;
  try {
    sent = await send(receiver.port);
    if (receiver.protocol === "udp") {
      // Datagrams have no close: wait until `connections` messages or 500 ms of quiet.
      await settleDatagrams(receiver.collector, connections, settleMs);
      return { sent, received: received = await receiver.stop() };
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      receiver.collector.whenClosed(connections),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new TimeoutError("the server to see every connection close", settleMs)),
          settleMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  } finally {
    received = await receiver.stop();
  }
  return { sent, received };
}

async function settleDatagrams(
  collector: Collector,
  messages: number,
  settleMs: number,
): Promise<void> {
  const deadline = performance.now() + settleMs;
  let seen = -1, quietSince = performance.now();
  while (collector.messages < messages && performance.now() < deadline) {
    if (collector.messages !== seen) {
      seen = collector.messages;
      quietSince = performance.now();
    } else if (performance.now() - quietSince > 500) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
