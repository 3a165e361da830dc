/**
 * The transports a counter is bounced over, and both ends of each: the echo side
 * (a service run in a worker or child, registered at import time) and the link
 * the measuring side sends through. Every echo checks the counter it receives and
 * sends it back plus one; the measuring side checks every reply.
 *
 * @module
 */
import { type Service, spawn, type Spawned } from "../shared/runtime.ts";
import { serviceOf } from "../shared/registry.ts";
import type { ChannelKind } from "../shared/child_channel.ts";
import type { ThreadChannelKind } from "../shared/child_channel_port.ts";
import { ffiUnavailable } from "./ffi.ts";
import { openSocketLink } from "./transports_socket.ts";
import { echoSab, sabLink } from "./transports_sab.ts";
import { asyncLink, channelLink } from "./transports_channel.ts";
export { portLink } from "./transports_channel.ts";
import {
  echoFfi,
  FFI_TRANSPORTS,
  type FfiInit,
  ffiSizeSkipReason,
  openFfiLink,
} from "./transports_ffi.ts";
import { TimeoutError, UnexpectedEofError, UsageError } from "../shared/errors.ts";
import { bumpCounter, readCounter, RUN_EPOCH, stampCounter, touchAll } from "./message.ts";
import {
  type CpuSource,
  pinMainThread,
  type Placement,
  processCpuMs,
  threadCpuMs,
  threadCpuSource,
  threadPlacement,
} from "./system.ts";

/** A way for two execution contexts to exchange messages. */
export type Transport =
  | "async"
  | "postmessage"
  | "channel-sab"
  | "messagechannel"
  | "atomics-wait"
  | "sab-spin"
  | "waitasync"
  | "pipes"
  | "channel-unix"
  | "channel-shm"
  | "tcp"
  | "unix"
  | "fifo"
  | "udp"
  | "shm-futex"
  | "shm-eventfd"
  | "shm-spin"
  | "mq";

/** Where the echo side runs. */
export type TransportKind = "in-process" | "thread" | "process";

/** What each transport is, for tables and `--help`. */
export const TRANSPORTS: Readonly<Record<Transport, { kind: TransportKind; label: string }>> = {
  "async": { kind: "in-process", label: "promise ping-pong on one event loop (baseline)" },
  "postmessage": {
    kind: "thread",
    label: "thread channel over Worker postMessage, transferable ArrayBuffer (before)",
  },
  "channel-sab": {
    kind: "thread",
    label: "thread channel over SharedArrayBuffer rings (the runtime's default)",
  },
  "messagechannel": { kind: "thread", label: "MessageChannel between two workers" },
  "atomics-wait": { kind: "thread", label: "SharedArrayBuffer + Atomics.wait/notify" },
  "sab-spin": { kind: "thread", label: "SharedArrayBuffer + spinning (the floor)" },
  "waitasync": { kind: "thread", label: "SharedArrayBuffer + Atomics.waitAsync" },
  "pipes": { kind: "process", label: "child channel over stdin/stdout pipes (the study's queue)" },
  "channel-unix": {
    kind: "process",
    label: "child channel over a Unix socket handed to the child",
  },
  "channel-shm": { kind: "process", label: "child channel over shared memory + futex (FFI)" },
  "tcp": { kind: "process", label: "TCP loopback, no-delay (the study's socket)" },
  "unix": { kind: "process", label: "Unix domain socket" },
  "fifo": { kind: "process", label: "two named pipes, raw bytes (pipes without the envelope)" },
  "udp": { kind: "process", label: "UDP loopback, one datagram per message (≤ 65,507 B)" },
  "shm-futex": { kind: "process", label: "shared memory + futex wait/wake (FFI)" },
  "shm-eventfd": { kind: "process", label: "shared memory + eventfd wake-ups (FFI)" },
  "shm-spin": { kind: "process", label: "shared memory, both sides spinning (FFI)" },
  "mq": { kind: "process", label: "POSIX message queues (FFI; ≤ fs.mqueue.msgsize_max)" },
};

/** All transports, in table order. */
export const TRANSPORT_NAMES = Object.keys(TRANSPORTS) as Transport[];

/** Parses `--transports` (comma-separated, or `all`); the error names the bad value. */
export function parseTransports(text: string): Transport[] {
  const parts = text.split(",").map((part) => part.trim().toLowerCase()).filter((p) => p !== "");
  if (parts.length === 0) throw new UsageError(`Invalid --transports '${text}': the list is empty`);
  if (parts.includes("all")) return [...TRANSPORT_NAMES];
  for (const part of parts) {
    if (!(part in TRANSPORTS)) {
      throw new UsageError(
        `Invalid --transports '${part}': expected all or some of ${TRANSPORT_NAMES.join(", ")}`,
      );
    }
  }
  return [...new Set(parts)] as Transport[];
}

/** The largest UDP payload over IPv4. */
export const MAX_DATAGRAM = 65507;

/**
 * Why a transport cannot carry messages of `size` bytes, or `null`. UDP carries
 * one datagram per message and never retries: a lost datagram fails the run
 * (after the timeout) rather than being measured as a retry timer.
 */
export function sizeSkipReason(transport: Transport, size: number): string | null {
  if (FFI_TRANSPORTS.has(transport)) {
    const why = ffiUnavailable();
    return why ? `FFI transports ${why}` : ffiSizeSkipReason(transport, size);
  }
  if (transport === "udp" && size > MAX_DATAGRAM) {
    return `a UDP datagram carries at most ${MAX_DATAGRAM} bytes, not ${size}`;
  }
  return null;
}

/** The setup an echo side receives. */
export interface EchoInit {
  transport: Transport;
  size: number;
  /** Messages handled at which to read the thread's CPU time (run boundaries). */
  marks: number[];
  /** CPU list the echo side was pinned to (for the report; the parent does the pinning). */
  cpu?: string;
  /** Count CPU time of the whole process (a child) rather than of the thread. */
  wholeProcess?: boolean;
  /** Milliseconds any single wait may take before the run fails. */
  timeoutMs: number;
  /** Read every byte of each message (zero-copy transports). */
  touch: boolean;
  /** TCP port or Unix socket path to connect to. */
  port?: number;
  path?: string;
  /** Shared control words and data for the SharedArrayBuffer transports. */
  sab?: SharedArrayBuffer;
  /** The other end of a MessageChannel. */
  port2?: MessagePort;
  /** Descriptors and names of the FFI transports. */
  ffi?: FfiInit;
  /** For tests: exit after this many messages (a peer dying mid-run). */
  dieAfter?: number;
  /** For tests: from this many messages on, add 2 instead of 1 (a wrong value). */
  corruptAfter?: number;
}

/** What an echo side reports when its run ends. */
export interface EchoReport {
  /** Echo thread CPU milliseconds between consecutive marks (one per run). */
  cpuMs: number[];
  /** `process` (a child's whole CPU, getrusage), or the thread's source. */
  cpuSource: CpuSource | "process";
  handled: number;
  placement: Placement;
}

/** The thread-channel kind each thread transport forces (the runtime's channel, measured). */
export const THREAD_CHANNEL_OF: Partial<Record<Transport, ThreadChannelKind>> = {
  "postmessage": "postmessage",
  "channel-sab": "sab",
};

/** The child-channel kind each channel transport forces (the runtime's channel, measured). */
export const CHANNEL_OF: Partial<Record<Transport, ChannelKind>> = {
  "pipes": "pipes",
  "channel-unix": "unix",
  "channel-shm": "shm",
};

/** Transports whose receiver gets the sender's bytes without a copy. */
export const ZERO_COPY: ReadonlySet<Transport> = new Set([
  "async",
  "postmessage",
  "messagechannel",
]);

/** The first control words of a SharedArrayBuffer link; the message starts after them. */
export const SAB_HEADER_BYTES = 16;

/** Counts messages, applies the test faults, and reads CPU time at the marks. */
export class EchoMeter {
  handled = 0;
  sink = 0;
  #cpu: number[] = [];
  #next = 0;
  /** Messages handled before the first timed one ({@linkcode RUN_EPOCH}); -1 until it came. */
  #warmup = -1;
  constructor(readonly init: EchoInit) {}
  #check(): void {
    const timed = this.handled - this.#warmup;
    while (this.#next < this.init.marks.length && this.init.marks[this.#next] === timed) {
      this.#cpu.push(this.init.wholeProcess ? processCpuMs() : threadCpuMs());
      this.#next++;
    }
  }
  /** Checks and bumps one message in place. */
  handle(bytes: Uint8Array): void {
    if (this.init.touch) this.sink ^= touchAll(bytes);
    if (this.#warmup < 0 && readCounter(bytes, this.init.size) === RUN_EPOCH) {
      this.#warmup = this.handled;
      this.#check();
    }
    const next = bumpCounter(bytes, this.init.size);
    this.handled++;
    if (this.init.corruptAfter !== undefined && this.handled > this.init.corruptAfter) {
      stampCounter(bytes, next + 1);
    }
    if (this.init.dieAfter !== undefined && this.handled >= this.init.dieAfter) Deno.exit(3);
    if (this.#warmup >= 0 && this.#next < this.init.marks.length) this.#check();
  }
  report(): EchoReport {
    const cpuMs = this.#cpu.slice(1).map((v, i) => v - this.#cpu[i]);
    return {
      cpuMs,
      cpuSource: this.init.wholeProcess ? "process" : threadCpuSource(),
      handled: this.handled,
      placement: threadPlacement(this.init.cpu ?? "unpinned"),
    };
  }
}

/** Reads exactly `buf.length` bytes; `false` on a clean end before the first byte. */
export async function readFull(
  conn: { read(p: Uint8Array): Promise<number | null> },
  buf: Uint8Array,
): Promise<boolean> {
  let offset = 0;
  while (offset < buf.length) {
    const n = await conn.read(buf.subarray(offset));
    if (n === null) {
      if (offset === 0) return false;
      throw new UnexpectedEofError(buf.length - offset, `${buf.length}-byte message`);
    }
    offset += n;
  }
  return true;
}

/** Writes all of `buf`. */
export async function writeFull(
  conn: { write(p: Uint8Array): Promise<number> },
  buf: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < buf.length) offset += await conn.write(buf.subarray(offset));
}

/** The echo side of every transport (registered in registry.ts). */
export const echoService: Service = async (channel, rawInit, info) => {
  const init = { ...(rawInit as EchoInit), wholeProcess: info.kind === "process" };
  const meter = new EchoMeter(init);
  const t = init.transport;
  if (THREAD_CHANNEL_OF[t] || CHANNEL_OF[t]) {
    channel.send({ ready: true });
    for (;;) {
      const message = await channel.receive();
      if (message === null) break;
      const bytes = message.bytes ?? new Uint8Array(0);
      meter.handle(bytes);
      channel.send(null, bytes, true);
    }
  } else if (t === "messagechannel") {
    const port = init.port2!;
    const ended = new Promise<void>((resolve) => {
      port.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
        if (typeof event.data === "string") {
          port.close();
          return resolve();
        }
        meter.handle(new Uint8Array(event.data));
        port.postMessage(event.data, [event.data]);
      };
    });
    channel.send({ ready: true });
    await ended;
  } else if (t === "tcp" || t === "unix") {
    const conn = t === "tcp"
      ? await Deno.connect({ hostname: "127.0.0.1", port: init.port! })
      : await Deno.connect({ transport: "unix", path: init.path! });
    if (t === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
    channel.send({ ready: true });
    await echoBytes(conn, conn, meter, () => conn.close());
  } else if (t === "udp") {
    const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    // The first datagram tells the measuring side where the echo listens.
    await socket.send(new Uint8Array([1]), {
      transport: "udp",
      hostname: "127.0.0.1",
      port: init.port!,
    });
    channel.send({ ready: true });
    const buf = new Uint8Array(init.size + 1);
    try {
      for (;;) {
        const [data, from] = await socket.receive(buf);
        // An empty datagram is the measuring side's "end".
        if (data.length === 0) break;
        meter.handle(data);
        await socket.send(data, from);
      }
    } finally {
      socket.close();
    }
  } else if (t === "fifo") {
    // Ready first: opening a FIFO blocks until the other end opens it too.
    channel.send({ ready: true });
    const input = await Deno.open(`${init.path}/to-echo`, { read: true });
    const output = await Deno.open(`${init.path}/from-echo`, { write: true });
    await echoBytes(input, output, meter, () => {
      input.close();
      output.close();
    });
  } else if (t === "atomics-wait" || t === "sab-spin" || t === "waitasync") {
    channel.send({ ready: true });
    await echoSab(init, meter);
  } else if (FFI_TRANSPORTS.has(t)) {
    // Ready once attached (the measuring side then removes the queue names). The
    // child's channel here is its pipes, written synchronously: the message leaves
    // before the echo blocks.
    echoFfi(init, (bytes) => meter.handle(bytes), () => channel.send({ ready: true }));
  } else {
    throw new Error(`transport '${t}' has no echo side in a worker or child`);
  }
  return meter.report();
};

/** Echoes fixed-size messages from `input` to `output` until `input` ends, then closes. */
async function echoBytes(
  input: { read(p: Uint8Array): Promise<number | null> },
  output: { write(p: Uint8Array): Promise<number> },
  meter: EchoMeter,
  close: () => void,
): Promise<void> {
  const buf = new Uint8Array(meter.init.size);
  try {
    while (await readFull(input, buf)) {
      meter.handle(buf);
      await writeFull(output, buf);
    }
  } finally {
    close();
  }
}

/** The measuring side's end of a transport. */
export interface Link {
  /** Sends one message and resolves with the reply (the same or a new buffer). */
  roundTrip?(message: Uint8Array): Promise<Uint8Array>;
  /** Same, blocking (SharedArrayBuffer transports). */
  roundTripSync?(message: Uint8Array): Uint8Array;
  /** Read every byte of each reply (zero-copy transports). */
  touch: boolean;
  /** Makes a pending or later round trip fail with `error` (peer died, watchdog). */
  abort(error: Error): void;
  /** Ends the run cleanly and returns the echo side's report. */
  finish(): Promise<EchoReport | null>;
  /** Stops the peer at once (after a failure); never throws. */
  kill(): void;
  /** Who is on the other side, for errors: `child process 0 (pid 123)`. */
  where: string;
  /** For child processes: the channel kind that ran, and why if it fell back. */
  channel?: string;
}

/** How to open a link. */
export interface LinkOptions {
  transport: Transport;
  size: number;
  marks: number[];
  timeoutMs: number;
  /** CPU list for the echo side. */
  echoCpu?: string;
  entry?: string | URL;
  dieAfter?: number;
  corruptAfter?: number;
}

/** Rejects with a {@linkcode TimeoutError} after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The echo side's setup for a link. */
export function echoInit(options: LinkOptions, extra: Partial<EchoInit> = {}): EchoInit {
  const kind = TRANSPORTS[options.transport].kind;
  return {
    transport: options.transport,
    size: options.size,
    marks: options.marks,
    cpu: kind === "in-process" ? undefined : options.echoCpu,
    timeoutMs: options.timeoutMs,
    // Zero-copy transports (and the in-process baseline, which passes a reference)
    // make the receiver read every byte, as a real consumer would.
    touch: ZERO_COPY.has(options.transport),
    dieAfter: options.dieAfter,
    corruptAfter: options.corruptAfter,
    ...extra,
  };
}

/** Starts the echo side and waits for its `ready`. */
export async function startEcho(
  options: LinkOptions,
  extra: Partial<EchoInit> = {},
  transfer: Transferable[] = [],
): Promise<Spawned> {
  const kind = TRANSPORTS[options.transport].kind === "process" ? "process" : "thread";
  // A child is pinned whole by taskset; a worker thread inherits the CPUs of the
  // thread that creates it, so the main thread is pinned while it starts one.
  const restore = kind === "thread" && options.echoCpu !== undefined
    ? await pinMainThread(options.echoCpu)
    : undefined;
  let spawned: Spawned;
  try {
    spawned = await spawn(kind, {
      // The registry is loaded at call time: it imports this module.
      service: serviceOf((await import("./registry.ts")).registry, "ipcbench.echo"),
      init: echoInit(options, extra),
      entry: options.entry,
      cpus: kind === "process" ? options.echoCpu : undefined,
      channel: CHANNEL_OF[options.transport] ?? "pipes",
      threadChannel: THREAD_CHANNEL_OF[options.transport],
      transfer,
    });
  } finally {
    if (restore !== undefined) await pinMainThread(restore);
  }
  try {
    const ready = await withTimeout(
      Promise.race([spawned.channel.receive(), spawned.done.then(() => null)]),
      options.timeoutMs,
      `${spawned.where} to start`,
    );
    if (ready === null) throw new Error(`${spawned.where} ended before it was ready`);
  } catch (error) {
    spawned.kill();
    throw error;
  }
  return spawned;
}

/** What a finished or failed peer turns into for the measuring side. */
export function peerEnded(spawned: Spawned, error?: unknown): Error {
  if (error instanceof Error) {
    return new Error(`the echo side (${spawned.where}) failed mid-run: ${error.message}`);
  }
  return new Error(`the echo side (${spawned.where}) ended mid-run`);
}

/** Waits for the echo's report (killing it after `timeoutMs`). */
export async function finishSpawned(spawned: Spawned, timeoutMs: number): Promise<EchoReport> {
  try {
    return await withTimeout(spawned.done, timeoutMs, `${spawned.where} to finish`) as EchoReport;
  } catch (error) {
    spawned.kill();
    throw error;
  }
}

/**
 * Starts the echo side of a transport (not `messagechannel`, whose measuring side
 * runs in a worker too: see measure.ts) and returns the measuring side's link.
 */
export async function openLink(options: LinkOptions): Promise<Link> {
  const t = options.transport;
  if (t === "async") return asyncLink(options);
  if (FFI_TRANSPORTS.has(t)) {
    return await openFfiLink(options, { startEcho, finishSpawned, peerEnded });
  }
  if (THREAD_CHANNEL_OF[t] || CHANNEL_OF[t]) {
    return channelLink(await startEcho(options), options, { finishSpawned, peerEnded });
  }
  if (t === "atomics-wait" || t === "sab-spin" || t === "waitasync") {
    const sab = new SharedArrayBuffer(SAB_HEADER_BYTES + options.size);
    const spawned = await startEcho(options, { sab });
    const link = sabLink(spawned, sab, options, { finishSpawned, peerEnded });
    if (t === "waitasync") {
      // Deno does not keep the event loop alive for a pending waitAsync timeout.
      const keepAlive = setInterval(() => {}, 1000);
      const finish = link.finish.bind(link);
      const kill = link.kill.bind(link);
      link.finish = () => finish().finally(() => clearInterval(keepAlive));
      link.kill = () => {
        clearInterval(keepAlive);
        kill();
      };
    }
    return link;
  }
  if (t === "tcp" || t === "unix" || t === "udp" || t === "fifo") {
    return await openSocketLink(options, { startEcho, finishSpawned, peerEnded, withTimeout });
  }
  throw new Error(`transport '${t}' is opened by the measuring worker`);
}
