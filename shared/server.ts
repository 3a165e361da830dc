/**
 * TCP servers in every execution mode, written once for the three servers
 * (`transfer`, `taskserver`, `interarrival`):
 *
 * - `sequential`: one connection at a time; the next waits in the listen queue.
 * - `async`: every connection on this isolate's event loop.
 * - `thread` / `process`, pooled: `workers` Web Workers or child processes, each
 *   with its own listener on the same port (`reusePort`), each serving its
 *   connections asynchronously; the kernel spreads connections among them.
 * - `thread` / `process`, `perConnection`: this isolate accepts, and starts a
 *   worker or child for each connection (the studies' design), relaying the bytes,
 *   since a `Deno.Conn` cannot be handed to another isolate.
 *
 * A connection handler is declared in the program's registry (shared/registry.ts,
 * which calls {@linkcode defineConnectionHandler}). It reports what it measured
 * with `emit`; events from every worker and child reach `onEvent` in this
 * isolate, so nothing is lost.
 *
 * Over 500 lines on purpose: the accept loop, the pool's and the per-connection
 * worker services and the relay share the handler table, the limits (backlog,
 * connections, refusals) and the stop protocol, and the services must be
 * registered by the module that `serve` lives in; split, they would import each
 * other.
 *
 * @module
 */
import { onAbort } from "./abort.ts";
import { errorMessage, listenError } from "./errors.ts";
import type { Mode } from "./mode.ts";
import { type Channel, defineService, describeWhere, spawn, type Spawned } from "./runtime.ts";

/** A two-way byte stream: a `Deno.Conn`, or a relayed connection in a worker or child. */
export interface Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly remoteAddr: { hostname: string; port: number };
  readonly localAddr: { hostname: string; port: number };
  close(): void;
}

/** What a connection handler knows about where it runs. */
export interface ConnectionContext<Init = unknown> {
  /** The `init` value given to {@linkcode serve}. */
  init: Init;
  /** Index of the worker or child serving it (0 in this isolate). */
  worker: number;
  pid: number;
  /** e.g. `thread worker 2 (pid 1234)`. */
  where: string;
  /** Number of this connection, unique within its worker, from 1. */
  connection: number;
  /** Epoch milliseconds (sub-millisecond) when the connection was accepted. */
  acceptedAt: number;
  /** Aborted when the server is closing. */
  signal: AbortSignal;
  /** Sends an event (JSON-serialisable) to `onEvent` in the serving isolate. */
  emit(event: unknown): void;
}

/** Serves one connection; the server closes the connection when it returns. */
export type ConnectionHandler<Init = unknown> = (
  conn: Duplex,
  context: ConnectionContext<Init>,
) => Promise<void> | void;

const handlers = new Map<string, ConnectionHandler<unknown>>();

/**
 * Registers a connection handler by name for pooled workers and children.
 * Programs declare their handlers in a registry (`defineRegistry` in
 * shared/registry.ts calls this) and name them with `handlerOf`.
 */
export function defineConnectionHandler<Init>(
  name: string,
  handler: ConnectionHandler<Init>,
): void {
  handlers.set(name, handler as ConnectionHandler<unknown>);
}

/** Where an event came from. */
export interface EventSource {
  worker: number;
  where: string;
}

/** Options for {@linkcode serve}. */
export interface ServeOptions<Init = unknown> {
  /** Name given to {@linkcode defineConnectionHandler}. */
  handler: string;
  mode: Mode;
  /** Address to listen on (default `0.0.0.0`). */
  hostname?: string;
  /** Port (0 picks a free one; the chosen port is in the result). */
  port: number;
  /** Value every handler receives as `context.init` (JSON-serialisable). */
  init?: Init;
  /** Pool size for `thread` and `process` (default 2). */
  workers?: number;
  /** `thread`/`process`: a worker or child per connection instead of a pool. */
  perConnection?: boolean;
  /** Module that registers the handler and calls `enterRole` (default: the main module). */
  entry?: string | URL;
  /** Receives every event handlers emit, in this isolate. */
  onEvent?: (event: unknown, source: EventSource) => void;
  /** Closes the server when aborted. */
  signal?: AbortSignal;
  /** Milliseconds open connections get to finish when the server closes (default 1000). */
  graceMs?: number;
  /**
   * Listen-queue capacity to provide, for bursts of connections. `Deno.listen`'s
   * queue is fixed at 511, and a connection that finds it full costs its client a
   * 1 s SYN retry; above 511 the server opens `ceil(backlog / 511)` listeners on
   * the same port (`reusePort`: the kernel spreads new connections among them),
   * shared among the pool's workers in pooled modes. Ignored in `sequential`
   * mode, which keeps one listener so that clients are served one at a time.
   * Default {@linkcode DEFAULT_BACKLOG}.
   */
  backlog?: number;
  /**
   * Most connections served at once (default {@linkcode DEFAULT_MAX_CONNECTIONS});
   * pools give each worker an equal share, rounded up. A connection above the
   * bound is accepted, sent `refusal` (if any) and closed at once, so that its
   * client learns why instead of waiting in the listen queue.
   */
  maxConnections?: number;
  /** What a connection refused by `maxConnections` is sent before it is closed. */
  refusal?: string;
  /**
   * `thread`/`process` pools: a service (registered by the entry) that each
   * pooled worker runs instead of the `Deno.Conn` accept loop, for a tool with
   * its own socket engine. It gets the same init (`hostname`, `port`, `init`,
   * `graceMs`, `listeners`, `maxConnections`, `refusal`) and speaks the same
   * messages: `{ listening: true }` once it listens, `{ refused: n }`, and it
   * stops when its channel ends.
   */
  poolService?: string;
  /**
   * Told how many connections were just refused by `maxConnections` (several
   * refusals in a short time arrive as one call). Default: a line on stderr at
   * most every {@linkcode REFUSAL_REPORT_MS}, so that an operator sees clients
   * turned away (`Refused 37 connections in the last 10 s: ...`).
   */
  onRefused?: (refused: number) => void;
}

/** Default listen-queue capacity: a burst of this many connections gets no SYN retry. */
export const DEFAULT_BACKLOG = 16_384;

/**
 * Default bound on connections served at once. Above it a connection is refused
 * (see {@linkcode ServeOptions.maxConnections}); the bound keeps descriptors and
 * per-connection memory finite whatever clients do.
 */
export const DEFAULT_MAX_CONNECTIONS = 16_384;

/**
 * Default bound in the `thread`/`process` per-connection designs, where every
 * connection costs a Web Worker (~10 MB) or a child process (~40 MB).
 */
export const DEFAULT_MAX_PER_CONNECTION_WORKERS = 256;

/**
 * Bytes the per-connection relay lets travel, in each direction, ahead of the
 * side that consumes them (the handler reading, the client reading), so that a
 * client that floods or never reads costs at most this much memory.
 */
const RELAY_WINDOW = 1 << 20;

/** Milliseconds a refused client gets to take the refusal before its connection closes. */
const REFUSAL_WRITE_MS = 1000;

/** Most often the default refusal report is written to stderr, in milliseconds. */
export const REFUSAL_REPORT_MS = 10_000;

/**
 * Counts the connections a server refused over its `maxConnections` bound, for
 * {@linkcode RunningServer.refusedConnections}, and passes them on to
 * `onRefused` or, by default, to a stderr line at most every
 * {@linkcode REFUSAL_REPORT_MS} (the first one at once).
 */
export class RefusalTally {
  total = 0;
  #unreported = 0;
  #lastReport = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  constructor(
    private readonly where: string,
    private readonly bound: number,
    private readonly onRefused?: (refused: number) => void,
  ) {}

  add(refused: number): void {
    this.total += refused;
    if (this.onRefused) return this.onRefused(refused);
    this.#unreported += refused;
    if (this.#timer !== undefined) return;
    const wait = Math.max(0, this.#lastReport + REFUSAL_REPORT_MS - performance.now());
    const timer = setTimeout(() => this.flush(), wait);
    // A pending report never keeps a stopped server's process alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Writes what is not reported yet (also when the server closes). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#unreported === 0) return;
    const more = this.#lastReport === -Infinity ? "" : " more";
    console.error(
      `${this.where}: refused ${this.#unreported}${more} connection` +
        `${this.#unreported === 1 ? "" : "s"}: ${this.bound} already open ` +
        `(the server's max connections); ${this.total} refused since start`,
    );
    this.#unreported = 0;
    this.#lastReport = performance.now();
  }
}

/** `Deno.listen`'s fixed listen-queue length. */
export const DENO_LISTEN_BACKLOG = 511;

/** Listeners each isolate opens for a `backlog` shared by `isolates` isolates. */
export function listenerCount(backlog: number | undefined, isolates = 1): number {
  const wanted = backlog ?? DEFAULT_BACKLOG;
  if (wanted <= DENO_LISTEN_BACKLOG) return 1;
  return Math.max(1, Math.ceil(wanted / DENO_LISTEN_BACKLOG / isolates));
}

/**
 * Fails with `Cannot listen on HOST:PORT: address already in use` when any other
 * socket listens on the port. `reusePort` would otherwise let a second server
 * join a port another process serves and silently take part of its traffic:
 * a plain bind (no `SO_REUSEPORT`) conflicts with every listener on the port.
 */
export function claimPort(hostname: string, port: number): void {
  if (port === 0) return;
  try {
    Deno.listen({ hostname, port }).close();
  } catch (error) {
    throw listenError(hostname, port, error);
  }
}

/**
 * Opens `count` listeners on one port (with reusePort when more than one). With
 * `join`, the port belongs to this server's pool and is not claimed again.
 */
function listenAll(
  hostname: string,
  port: number,
  count: number,
  reusePort = false,
  join = false,
): Deno.Listener[] {
  const reuse = reusePort || count > 1;
  if (reuse && !join) claimPort(hostname, port);
  let first: Deno.Listener;
  try {
    first = Deno.listen({ hostname, port, ...(reuse ? { reusePort: true } : {}) });
  } catch (error) {
    throw listenError(hostname, port, error);
  }
  const listeners = [first];
  const chosen = (first.addr as Deno.NetAddr).port;
  try {
    for (let i = 1; i < count; i++) {
      listeners.push(Deno.listen({ hostname, port: chosen, reusePort: true }));
    }
  } catch (error) {
    for (const listener of listeners) listener.close();
    throw listenError(hostname, chosen, error);
  }
  return listeners;
}

/**
 * True for `accept()` errors that mean the process is out of descriptors or
 * kernel memory, where accepting again at once would fail again. Anything else
 * (`NotConnected`, `ConnectionReset`, `ConnectionAborted`: a connection reset
 * while it waited in the queue) concerns one client, and the loop accepts the
 * next connection without waiting.
 */
export function isResourceExhaustion(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12.
  return /\(os error (24|23|105|12)\)|too many open files|no buffer space|out of memory/i.test(
    message,
  );
}

/** A running server. */
export interface RunningServer {
  hostname: string;
  port: number;
  mode: Mode;
  /** Stops accepting, gives open connections `graceMs`, then ends every worker and child. */
  close(): Promise<void>;
  /** Settles when the server has stopped (after `close`, or a fatal error). */
  finished: Promise<void>;
  /** Connections refused so far because `maxConnections` were open (every worker's). */
  refusedConnections(): number;
}

function epoch(): number {
  return performance.timeOrigin + performance.now();
}

interface LoopOptions {
  /** One or more listeners on the same port; each gets its own accept loop. */
  listeners: Deno.Listener[];
  handler: ConnectionHandler<unknown>;
  init: unknown;
  worker: number;
  where: string;
  sequential: boolean;
  emit: (event: unknown) => void;
  graceMs: number;
  /** Most connections served at once by this loop. */
  maxConnections: number;
  refusal?: string;
  /** Called for each connection refused by `maxConnections`. */
  onRefuse: () => void;
}

/** Sends `refusal` (bounded in time) to a connection over the bound, then closes it. */
async function refuse(conn: Deno.Conn, refusal: string | undefined): Promise<void> {
  if (refusal) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      conn.write(new TextEncoder().encode(refusal)).catch(() => 0),
      new Promise((resolve) => timer = setTimeout(resolve, REFUSAL_WRITE_MS)),
    ]);
    clearTimeout(timer);
  }
  try {
    conn.close();
  } catch {
    // Reset by the client already.
  }
}

/** Accept loop shared by this isolate and the pooled workers; returns a stop function. */
function acceptLoop(options: LoopOptions): { stop(): Promise<void>; done: Promise<void> } {
  const controller = new AbortController();
  const open = new Set<Promise<void>>();
  const conns = new Set<Deno.Conn>();
  let count = 0;
  const serveOne = async (conn: Deno.Conn, acceptedAt: number) => {
    conns.add(conn);
    try {
      await options.handler(conn as unknown as Duplex, {
        init: options.init,
        worker: options.worker,
        pid: Deno.pid,
        where: options.where,
        connection: ++count,
        acceptedAt,
        signal: controller.signal,
        emit: options.emit,
      });
    } catch (error) {
      // One bad connection never stops the server.
      if (!controller.signal.aborted) console.error(`${options.where}: connection error: ${error}`);
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed by the handler.
      }
    }
  };
  const acceptFrom = async (listener: Deno.Listener) => {
    let failedInARow = 0;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (controller.signal.aborted || error instanceof Deno.errors.BadResource) break;
        // Out of descriptors: wait briefly for some to close, and keep serving.
        if (isResourceExhaustion(error)) await new Promise((resolve) => setTimeout(resolve, 10));
        else if (++failedInARow % 256 === 0) {
          // Never a hot loop, whatever the error: let timers and other work run.
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
        // Otherwise a connection was reset in the queue: the next one is waiting.
        continue;
      }
      failedInARow = 0;
      if (conns.size >= options.maxConnections) {
        options.onRefuse();
        void refuse(conn, options.refusal);
        continue;
      }
      const acceptedAt = epoch();
      if (options.sequential) await serveOne(conn, acceptedAt);
      else {
        const task = serveOne(conn, acceptedAt);
        open.add(task);
        task.finally(() => open.delete(task));
      }
    }
  };
  const done = Promise.all(options.listeners.map(acceptFrom)).then(() => {});
  return {
    done,
    async stop() {
      for (const listener of options.listeners) {
        try {
          listener.close();
        } catch {
          // Already closed.
        }
      }
      await done;
      if (open.size > 0) {
        await Promise.race([
          Promise.allSettled(open),
          new Promise((r) => setTimeout(r, options.graceMs)),
        ]);
      }
      controller.abort();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.allSettled(open);
    },
  };
}

function batchedEmitter(channel: Channel): (event: unknown) => void {
  let pending: unknown[] = [];
  let scheduled = false;
  return (event) => {
    pending.push(event);
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      const events = pending;
      pending = [];
      channel.send({ ev: events });
    }, 0);
  };
}

function flushEvents(emit: (event: unknown) => void): Promise<void> {
  void emit;
  // Let a scheduled batch go out before the service returns.
  return new Promise((resolve) => setTimeout(resolve, 1));
}

/** Pool worker: listens on the shared port and serves until the parent ends the channel. */
defineService("netconc.server.pool", async (channel, init, info) => {
  const options = init as {
    handler: string;
    hostname: string;
    port: number;
    init: unknown;
    graceMs: number;
    listeners?: number;
    maxConnections?: number;
    refusal?: string;
  };
  const handler = handlers.get(options.handler);
  if (!handler) throw new Error(`no connection handler named '${options.handler}' is registered`);
  // The parent claimed the port for the pool: its workers join it.
  const listeners = listenAll(options.hostname, options.port, options.listeners ?? 1, true, true);
  const emit = batchedEmitter(channel);
  // Refusals go to the parent in batches, so that a flood of them is not a flood of messages.
  let refused = 0;
  let refusedTimer: ReturnType<typeof setTimeout> | undefined;
  const sendRefused = () => {
    clearTimeout(refusedTimer);
    refusedTimer = undefined;
    if (refused > 0) channel.send({ refused });
    refused = 0;
  };
  const loop = acceptLoop({
    listeners,
    handler,
    init: options.init,
    worker: info.id,
    where: info.where,
    sequential: false,
    emit,
    graceMs: options.graceMs,
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    refusal: options.refusal,
    onRefuse() {
      if (refused++ === 0) refusedTimer = setTimeout(sendRefused, 100);
    },
  });
  channel.send({ listening: true });
  while ((await channel.receive()) !== null);
  await loop.stop();
  sendRefused();
  await flushEvents(emit);
  return null;
});

/** Per-connection worker: serves one relayed connection. */
defineService("netconc.server.connection", async (channel, init, info) => {
  const options = init as {
    handler: string;
    init: unknown;
    remote: { hostname: string; port: number };
    local: { hostname: string; port: number };
    connection: number;
    acceptedAt: number;
  };
  const handler = handlers.get(options.handler);
  if (!handler) throw new Error(`no connection handler named '${options.handler}' is registered`);
  // Bytes from the client wait here until the handler reads them; each read is
  // acknowledged, so the relay sends at most RELAY_WINDOW unread bytes.
  const queue: Uint8Array[] = [];
  let readableClosed = false;
  let wakeReader: (() => void) | null = null;
  const wake = () => {
    wakeReader?.();
    wakeReader = null;
  };
  const readable = new ReadableStream<Uint8Array>({
    async pull(c) {
      while (queue.length === 0 && !readableClosed) {
        await new Promise<void>((resolve) => wakeReader = resolve);
      }
      const chunk = queue.shift();
      if (chunk) {
        channel.send({ ack: chunk.length });
        c.enqueue(chunk);
      } else c.close();
    },
    cancel() {
      readableClosed = true;
      queue.length = 0;
    },
  }, { highWaterMark: 0 });
  const endReadable = () => {
    readableClosed = true;
    wake();
  };
  // Bytes to the client: the handler's writes wait while RELAY_WINDOW bytes are
  // unacknowledged, so a client that does not read cannot make the relay buffer.
  let unacked = 0;
  let wakeWriter: (() => void) | null = null;
  const controller = new AbortController();
  const releaseWriter = () => {
    wakeWriter?.();
    wakeWriter = null;
  };
  channel.listen((message) => {
    const data = message.data as { eof?: boolean; abort?: boolean; ack?: number };
    if (message.bytes) {
      if (!readableClosed) queue.push(message.bytes);
      wake();
    } else if (data.ack !== undefined) {
      unacked -= data.ack;
      if (unacked <= RELAY_WINDOW) releaseWriter();
    } else if (data.eof) endReadable();
    else if (data.abort) {
      endReadable();
      controller.abort();
      releaseWriter();
    }
  });
  const writable = new WritableStream<Uint8Array>({
    write: async (chunk) => {
      channel.send({}, chunk);
      unacked += chunk.length;
      while (unacked > RELAY_WINDOW && !controller.signal.aborted) {
        await new Promise<void>((resolve) => wakeWriter = resolve);
      }
    },
    close: () => channel.send({ shut: true }),
  });
  const emit = batchedEmitter(channel);
  const conn: Duplex = {
    readable,
    writable,
    remoteAddr: options.remote,
    localAddr: options.local,
    close: () => {
      endReadable();
      channel.send({ shut: true });
    },
  };
  try {
    await handler(conn, {
      init: options.init,
      worker: info.id,
      pid: info.pid,
      where: info.where,
      connection: options.connection,
      acceptedAt: options.acceptedAt,
      signal: controller.signal,
      emit,
    });
  } finally {
    await flushEvents(emit);
  }
  return null;
});

/**
 * Starts a server in the given mode and returns once it is accepting connections.
 *
 * @throws when the address cannot be bound (`AddrInUse`, `PermissionDenied`), or a
 * worker or child fails to start.
 */
export async function serve<Init>(options: ServeOptions<Init>): Promise<RunningServer> {
  const hostname = options.hostname ?? "0.0.0.0";
  const graceMs = options.graceMs ?? 1000;
  const onEvent = options.onEvent ?? (() => {});
  const local = options.mode === "sequential" || options.mode === "async";
  if (local || options.perConnection) {
    const handler = handlers.get(options.handler);
    if (!handler) throw new Error(`no connection handler named '${options.handler}' is registered`);
    const count = options.mode === "sequential" ? 1 : listenerCount(options.backlog);
    const listeners = listenAll(hostname, options.port, count);
    const port = (listeners[0].addr as Deno.NetAddr).port;
    const where = describeWhere("main", 0, Deno.pid);
    const relay = local ? handler : relayHandler(options, onEvent);
    const maxConnections = options.maxConnections ??
      (local ? DEFAULT_MAX_CONNECTIONS : DEFAULT_MAX_PER_CONNECTION_WORKERS);
    const tally = new RefusalTally(where, maxConnections, options.onRefused);
    const loop = acceptLoop({
      listeners,
      handler: relay,
      init: options.init,
      worker: 0,
      where,
      sequential: options.mode === "sequential",
      emit: (event) => onEvent(event, { worker: 0, where }),
      graceMs,
      maxConnections,
      refusal: options.refusal,
      onRefuse: () => tally.add(1),
    });
    let closing: Promise<void> | null = null;
    const close = () => (closing ??= loop.stop().then(() => tally.flush()));
    options.signal?.addEventListener("abort", () => void close(), { once: true });
    const finished = loop.done.then(() => closing ?? undefined);
    const refusedConnections = () => tally.total;
    return { hostname, port, mode: options.mode, close, finished, refusedConnections };
  }
  return await servePool(options, hostname, graceMs, onEvent);
}

let connectionCounter = 0;

function relayHandler<Init>(
  options: ServeOptions<Init>,
  onEvent: (event: unknown, source: EventSource) => void,
): ConnectionHandler<unknown> {
  const kind = options.mode as "thread" | "process";
  const graceMs = options.graceMs ?? 1000;
  return async (conn, context) => {
    const id = ++connectionCounter;
    const worker = await spawn(kind, {
      service: "netconc.server.connection",
      id,
      entry: options.entry,
      init: {
        handler: options.handler,
        init: options.init ?? null,
        remote: { hostname: conn.remoteAddr.hostname, port: conn.remoteAddr.port },
        local: { hostname: conn.localAddr.hostname, port: conn.localAddr.port },
        connection: context.connection,
        acceptedAt: context.acceptedAt,
      },
    });
    const writer = conn.writable.getWriter();
    let writes: Promise<void> = Promise.resolve();
    let shut = false;
    // Bytes sent to the worker and not yet read by its handler (see RELAY_WINDOW).
    let unread = 0;
    let ended = false;
    let wakePump: (() => void) | null = null;
    const releasePump = () => {
      wakePump?.();
      wakePump = null;
    };
    worker.channel.listen((message) => {
      const data = message.data as { ev?: unknown[]; shut?: boolean; ack?: number };
      if (message.bytes) {
        const chunk = message.bytes;
        // Acknowledged once the client took it (or is gone), so the worker may write more.
        writes = writes.then(() => writer.write(chunk)).catch(() => {}).then(() =>
          worker.channel.send({ ack: chunk.length })
        );
      } else if (data.ack !== undefined) {
        unread -= data.ack;
        if (unread <= RELAY_WINDOW) releasePump();
      } else if (data.ev) {
        for (const event of data.ev) onEvent(event, { worker: id, where: worker.where });
      } else if (data.shut && !shut) {
        shut = true;
        writes.then(() => writer.close()).catch(() => {});
      }
    });
    const forgetAbort = onAbort(context.signal, () => worker.channel.send({ abort: true }));
    const pump = (async () => {
      try {
        for await (const chunk of conn.readable) {
          worker.channel.send({}, chunk);
          unread += chunk.length;
          while (unread > RELAY_WINDOW && !ended) {
            await new Promise<void>((resolve) => wakePump = resolve);
          }
          if (ended) break;
        }
      } catch {
        // Reset by the peer: treated as the end of its data.
      }
      worker.channel.send({ eof: true });
    })();
    try {
      await worker.done;
    } finally {
      ended = true;
      releasePump();
      forgetAbort();
      worker.kill();
      // A client that stops reading cannot hold this connection open forever.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([writes, new Promise((r) => timer = setTimeout(r, graceMs))]);
      clearTimeout(timer);
      try {
        conn.close();
      } catch {
        // Closing the writable side already closed it.
      }
      await pump;
    }
  };
}

/** A pool replaces workers that die, but gives up after this many deaths in {@linkcode RESTART_WINDOW_MS}. */
const MAX_RESTARTS = 10;
const RESTART_WINDOW_MS = 60_000;

async function servePool<Init>(
  options: ServeOptions<Init>,
  hostname: string,
  graceMs: number,
  onEvent: (event: unknown, source: EventSource) => void,
): Promise<RunningServer> {
  const kind = options.mode as "thread" | "process";
  let port = options.port;
  let probe: Deno.Listener | null = null;
  if (port === 0) {
    // Reserve a port for the pool: the workers join it with reusePort.
    probe = Deno.listen({ hostname, port: 0, reusePort: true });
    port = (probe.addr as Deno.NetAddr).port;
  } else claimPort(hostname, port);
  const count = Math.max(1, options.workers ?? 2);
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const tally = new RefusalTally(
    `${kind} pool on ${hostname}:${port}`,
    maxConnections,
    options.onRefused,
  );
  /** Every worker started (dead ones included), so that closing reaches all. */
  const workers = new Set<Spawned>();
  let stopping = false;
  const restarts: number[] = [];
  let closing: Promise<void> | null = null;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => finish = resolve);
  const live = () => workers.size;
  /** Workers that never listened: their exit reason explains a failed start. */
  const unstarted: Spawned[] = [];

  // A worker that dies (a crash, a kill, out of memory) is replaced, so the pool
  // keeps its size; a pool whose workers keep dying stops.
  const replace = (id: number, why: string) => {
    if (stopping) {
      if (live() === 0) finish();
      return;
    }
    const now = performance.now();
    restarts.push(now);
    while (restarts.length > 0 && now - restarts[0] > RESTART_WINDOW_MS) restarts.shift();
    if (restarts.length > MAX_RESTARTS) {
      console.error(`${why}; ${restarts.length} deaths in a minute: stopping the server`);
      void close();
      return;
    }
    console.error(`${why}; starting a replacement`);
    startWorker(id).then((replacement) => {
      if (stopping) replacement.kill();
    }, (reason) => replace(id, `replacement for worker ${id} failed (${errorMessage(reason)})`));
  };

  const startWorker = async (id: number): Promise<Spawned> => {
    const worker = await spawn(kind, {
      service: options.poolService ?? "netconc.server.pool",
      id,
      entry: options.entry,
      init: {
        handler: options.handler,
        hostname,
        port,
        init: options.init ?? null,
        graceMs,
        listeners: listenerCount(options.backlog, count),
        maxConnections: Math.ceil(maxConnections / count),
        refusal: options.refusal,
      },
    });
    workers.add(worker);
    const first = await Promise.race([worker.channel.receive(), worker.done.then(() => null)]);
    if ((first?.data as { listening?: boolean } | undefined)?.listening !== true) {
      workers.delete(worker);
      unstarted.push(worker);
      worker.kill();
      throw new Error(`${worker.where} could not listen on ${hostname}:${port}`);
    }
    worker.channel.listen((message) => {
      const data = message.data as { ev?: unknown[]; refused?: number };
      if (data.ev) {
        for (const event of data.ev) onEvent(event, { worker: id, where: worker.where });
      }
      if (data.refused) tally.add(data.refused);
    });
    worker.done.then(() => null, (error) => error).then((error) => {
      workers.delete(worker);
      replace(id, error ? errorMessage(error) : `${worker.where} exited`);
    });
    return worker;
  };

  try {
    const started = await Promise.allSettled(
      Array.from({ length: count }, (_, id) => startWorker(id)),
    );
    const failed = started.find((result) => result.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (failed) {
      stopping = true;
      const all = [...workers, ...unstarted];
      for (const worker of all) worker.kill();
      // Prefer the worker's own reason (e.g. address in use) over the generic one.
      const reasons = await Promise.all(
        all.map((worker) => worker.done.then(() => null, (error) => error)),
      );
      throw reasons.find((reason) => reason !== null) ?? failed.reason;
    }
  } finally {
    probe?.close();
  }
  function close(): Promise<void> {
    return closing ??= (async () => {
      stopping = true;
      if (live() === 0) finish();
      for (const worker of workers) worker.end();
      const deadline = new Promise((resolve) => setTimeout(resolve, graceMs + 5000));
      await Promise.race([finished, deadline]);
      for (const worker of workers) worker.kill();
      await finished;
      tally.flush();
    })();
  }
  options.signal?.addEventListener("abort", () => void close(), { once: true });
  const refusedConnections = () => tally.total;
  return { hostname, port, mode: options.mode, close, finished, refusedConnections };
}
