/**
 * Worker threads and child processes, started the same way for every tool.
 *
 * A tool's entry module is also its worker and child entry: it registers its
 * services and tasks at import time, then calls {@linkcode enterRole}. In a Web
 * Worker, or when started with {@linkcode CHILD_FLAG}, `enterRole` takes over and
 * serves the parent; otherwise it returns `false` and the command line runs.
 *
 * Messages are JSON values with an optional binary attachment. Between a parent
 * and a child they travel as STEP-layout packets (`!II`, JSON, bytes) over the
 * channel of child_channel.ts (shared memory, a Unix socket, or the child's
 * stdin and stdout); the child's stderr is its log. A child whose channel or stdin
 * closes (its parent died) exits, so none is left behind.
 *
 * Over 500 lines on purpose: the parent's and the child's side of the envelope
 * protocol (ready, start, messages, done or fail, end) are kept in one module so
 * that they change together.
 *
 * @module
 */
import {
  type ChannelChoice,
  type ChannelKind,
  defaultChannel,
  openParentPort,
  type PacketPort,
  planChildChannel,
} from "./child_channel.ts";
import { type ErrorInfo, fromErrorInfo, toErrorInfo, WorkerCrashError } from "./errors.ts";
import { CHILD_FLAG, inChildRole, isWorkerScope } from "./role.ts";
import { NULL_MESSAGE, type ThreadChannelKind } from "./child_channel_port.ts";
import {
  defaultThreadChannel,
  SabRegion,
  ThreadLink,
  type ThreadWire,
} from "./thread_channel_sab.ts";

export { CHILD_FLAG, inChildRole };

/** One message: a JSON-serialisable value and an optional binary attachment. */
export interface Message {
  data: unknown;
  bytes?: Uint8Array;
}

/** Two-way message channel between a parent and one worker or child. */
export interface Channel {
  /** Sends a message; with `transfer`, a worker receives `bytes` without a copy. */
  send(data: unknown, bytes?: Uint8Array, transfer?: boolean): void;
  /** The next message, or `null` once the other side has finished. */
  receive(): Promise<Message | null>;
  /** Calls `handler` for each message instead of queuing it (for hot paths). */
  listen(handler: (message: Message) => void): void;
}

/** Where a service runs, passed to it and used in error messages. */
export interface WorkerInfo {
  kind: "thread" | "process";
  /** Index the parent gave this worker or child. */
  id: number;
  pid: number;
  /** e.g. `thread worker 2 (pid 1234)`. */
  where: string;
}

/** A long-lived function run inside a worker or child, talking over a channel. */
export type Service = (
  channel: Channel,
  init: unknown,
  info: WorkerInfo,
) => Promise<unknown> | unknown;

const services = new Map<string, Service>();

/**
 * Registers a service by name for workers and children. Programs declare their
 * services in a registry (`defineRegistry` in shared/registry.ts calls this)
 * and name them with `serviceOf`; shared/ itself calls it for its own services.
 */
export function defineService(name: string, service: Service): void {
  services.set(name, service);
}

/** Describes where code runs: `thread worker 2 (pid 1234)` or `child process 1 (pid 4321)`. */
export function describeWhere(
  kind: "thread" | "process" | "main",
  id: number,
  pid: number,
): string {
  if (kind === "main") return `main isolate (pid ${pid})`;
  return `${kind === "thread" ? "thread worker" : "child process"} ${id} (pid ${pid})`;
}

class QueueChannel implements Channel {
  #queue: Message[] = [];
  #waiters: ((message: Message | null) => void)[] = [];
  #handler: ((message: Message) => void) | null = null;
  #closed = false;

  constructor(readonly send: (data: unknown, bytes?: Uint8Array, transfer?: boolean) => void) {}

  push(message: Message): void {
    if (this.#handler) return this.#handler(message);
    const waiter = this.#waiters.shift();
    if (waiter) waiter(message);
    else this.#queue.push(message);
  }

  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter(null);
  }

  receive(): Promise<Message | null> {
    const next = this.#queue.shift();
    if (next) return Promise.resolve(next);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  listen(handler: (message: Message) => void): void {
    this.#handler = handler;
    for (const message of this.#queue.splice(0)) handler(message);
  }
}

// Envelope kinds on the wire between parent and worker or child.
type Envelope =
  | { t: "ready"; pid: number }
  | { t: "start"; service: string; init: unknown; id: number; ring?: SharedArrayBuffer }
  | { t: "m"; data: unknown }
  | { t: "done"; value: unknown }
  | { t: "fail"; error: ErrorInfo }
  | { t: "end" };

/** Hands a message packet (its envelope's data and its binary part, if any) to the channel's reader. */
function deliver(channel: QueueChannel, envelope: { data: unknown }, binary: Uint8Array): void {
  channel.push({ data: envelope.data, bytes: binary.length > 0 ? binary : undefined });
}

/**
 * Serves the parent when this isolate is a worker or a child. Returns `true` if
 * it took that role (the caller must then not run its command line), `false` in
 * a normal program start.
 */
export function enterRole(): boolean {
  if (isWorkerScope()) {
    hostWorker();
    return true;
  }
  if (Deno.args[0] === CHILD_FLAG) {
    hostChild();
    return true;
  }
  return false;
}

async function runService(
  start: Extract<Envelope, { t: "start" }>,
  channel: QueueChannel,
  kind: "thread" | "process",
  post: (envelope: Envelope, bytes?: Uint8Array) => void,
): Promise<void> {
  const info: WorkerInfo = {
    kind,
    id: start.id,
    pid: Deno.pid,
    where: describeWhere(kind, start.id, Deno.pid),
  };
  const service = services.get(start.service);
  try {
    if (!service) {
      throw new Error(`no service named '${start.service}' is registered in this program`);
    }
    const value = await service(channel, start.init, info);
    post({ t: "done", value: value ?? null });
  } catch (error) {
    post({ t: "fail", error: toErrorInfo(error) });
  }
}

function hostWorker(): void {
  // deno-lint-ignore no-explicit-any
  const scope = globalThis as any;
  const link = new ThreadLink(
    (wire, transfer) => scope.postMessage(wire, transfer),
    ({ envelope, bytes }) => {
      const e = envelope as Envelope;
      if (e.t === "m") channel.push({ data: e.data, bytes });
      else if (e.t === "end") channel.close();
      else if (e.t === "start") {
        if (e.ring) {
          link.attach(new SabRegion(e.ring), "child", (error) => {
            post({ t: "fail", error: toErrorInfo(error) });
          });
        }
        runService(e, channel, "thread", post)
          .then(() => link.flush())
          .finally(() => scope.close());
      }
    },
  );
  const post = (envelope: Envelope, bytes?: Uint8Array, transfer = false) =>
    link.send(envelope, bytes, transfer);
  const channel = new QueueChannel((data, bytes, transfer) =>
    post({ t: "m", data }, bytes, transfer)
  );
  // `Deno.exit` in a worker ends only the worker, with no event the parent can see:
  // report it first, so the parent gets a clear error instead of waiting forever.
  const realExit = Deno.exit;
  Object.defineProperty(Deno, "exit", {
    configurable: true,
    writable: true,
    value: (code?: number): never => {
      post({
        t: "fail",
        error: { name: "WorkerCrashError", message: `called Deno.exit(${code ?? 0})` },
      });
      return realExit(code);
    },
  });
  scope.onmessage = (event: MessageEvent<ThreadWire>) => link.received(event.data);
  post({ t: "ready", pid: Deno.pid });
}

function hostChild(): void {
  // stdout may carry messages: anything printed by mistake goes to the log instead.
  console.log = console.error;
  console.info = console.error;
  (async () => {
    const port = await openParentPort();
    const post = (envelope: Envelope, bytes?: Uint8Array) =>
      port.send(envelope as Record<string, unknown>, bytes);
    const channel = new QueueChannel((data, bytes) =>
      post(data === null ? NULL_MESSAGE : { t: "m", data }, bytes)
    );
    post({ t: "ready", pid: Deno.pid });
    let started: Promise<void> | null = null;
    for (;;) {
      const packet = await port.read();
      if (packet === null) break;
      const envelope = packet.json as Envelope;
      if (envelope.t === "m") deliver(channel, envelope, packet.binary);
      else if (envelope.t === "end") channel.close();
      else if (envelope.t === "start" && started === null) {
        // Leave only once the last packets (the result) are out of this process.
        started = runService(envelope, channel, "process", post)
          .then(() => port.flush())
          .then(() => Deno.exit(0));
      }
    }
    // The parent closed our channel (or died): nothing more will come.
    channel.close();
    if (started === null) Deno.exit(0);
    // Give the service a moment to finish on the closed channel, then leave.
    setTimeout(() => Deno.exit(0), 2000);
  })().catch((error) => {
    console.error(`child ${Deno.pid}: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  });
}

/** Options for {@linkcode spawn}. */
export interface SpawnOptions {
  /** Name the service was registered under with {@linkcode defineService}. */
  service: string;
  /** Value passed to the service (JSON-serialisable for processes). */
  init?: unknown;
  /** Index for this worker or child (in `where` and {@linkcode WorkerInfo}). */
  id?: number;
  /** Module that registers the service and calls {@linkcode enterRole}; default: the main module. */
  entry?: string | URL;
  /** For processes: CPU list for `taskset -c` (e.g. `"0"`). */
  cpus?: string;
  /** Extra Deno flags for a child run from source or a bundle. */
  denoFlags?: string[];
  /** For processes: the channel kind (default: `setDefaultChannel`, `NETCONC_CHANNEL`, auto). */
  channel?: ChannelChoice;
  /**
   * For threads: `sab` (rings in a SharedArrayBuffer, values JSON cannot carry
   * exactly by `postMessage`) or `postmessage` (default: `NETCONC_THREAD_CHANNEL`, else `sab`).
   */
  threadChannel?: ThreadChannelKind;
  /** Milliseconds to wait for the worker or child to start; default 60 000 (a loaded 2-core machine type-checks and starts a large graph slowly). */
  startTimeout?: number;
  /**
   * For threads: objects moved to the worker with its `init` (e.g. a `MessagePort`
   * placed in `init`, so two workers can talk without the parent). Ignored for processes.
   */
  transfer?: Transferable[];
}

/** A started worker or child. */
export interface Spawned {
  kind: "thread" | "process";
  id: number;
  pid: number;
  where: string;
  channel: Channel;
  /** The channel kind that ran (processes: `unix`, `shm`, `pipes`; threads: `sab`, `postmessage`), and why if a fallback. */
  channelKind?: ChannelKind | ThreadChannelKind;
  channelNote?: string;
  /** Settles with the service's return value, or rejects if it threw or the worker died. */
  done: Promise<unknown>;
  /** Tells the service no more messages will come (its `receive()` returns `null`). */
  end(): void;
  /** Stops it at once. */
  kill(): void;
}

/** The module workers and children load: `entry`, else the program's main module. */
export function resolveEntry(entry?: string | URL): string {
  const chosen = entry ?? Deno.mainModule;
  if (!chosen) throw new Error("cannot start workers: no entry module (pass `entry`)");
  return chosen.toString();
}

const PERMISSION_NAMES = ["read", "write", "net", "env", "run", "sys", "ffi", "import"] as const;

/** Deno flags that give a child the permissions this process holds without a scope. */
export function inheritedPermissionFlags(): string[] {
  const flags: string[] = [];
  for (const name of PERMISSION_NAMES) {
    try {
      if (Deno.permissions.querySync({ name } as Deno.PermissionDescriptor).state === "granted") {
        flags.push(`--allow-${name}`);
      }
    } catch {
      // Unknown permission name on this Deno version.
    }
  }
  return flags;
}

/**
 * The command line that starts this program in its child role: the binary itself
 * when compiled (`Deno.build.standalone`), else `deno run` on the entry module
 * (source or bundle) with the permissions this process holds.
 */
export function childCommand(
  entry: string,
  options: { cpus?: string; denoFlags?: string[] } = {},
): {
  command: string;
  args: string[];
} {
  let argv: string[];
  if (Deno.build.standalone) {
    argv = [Deno.execPath(), CHILD_FLAG];
  } else {
    const path = entry.startsWith("file:") ? new URL(entry).pathname : entry;
    argv = [
      Deno.execPath(),
      "run",
      "--quiet",
      "--no-prompt",
      "--unstable-net",
      ...inheritedPermissionFlags(),
      ...(options.denoFlags ?? []),
      path,
      CHILD_FLAG,
    ];
  }
  if (options.cpus !== undefined) argv = ["taskset", "-c", options.cpus, ...argv];
  return { command: argv[0], args: argv.slice(1) };
}

// Children need no signal handler: when this process dies its end of their stdin
// closes, and a child exits on EOF; a terminal's Ctrl-C reaches the whole group.
const liveChildren = new Set<Deno.ChildProcess>();

function trackChild(child: Deno.ChildProcess): void {
  liveChildren.add(child);
  child.status.finally(() => liveChildren.delete(child));
}

/** Kills every child process this program started and has not yet reaped. */
export function killAllChildren(): void {
  for (const child of liveChildren) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** PIDs of the child processes still running. */
export function liveChildPids(): number[] {
  return [...liveChildren].map((child) => child.pid);
}

function withStartTimeout<T>(
  promise: Promise<T>,
  ms: number,
  where: string,
  onTimeout: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout();
        reject(new WorkerCrashError(where, `did not start within ${ms} ms`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Starts a service in a Web Worker or a child process and waits until it runs. */
export function spawn(kind: "thread" | "process", options: SpawnOptions): Promise<Spawned> {
  return kind === "thread" ? spawnWorker(options) : spawnChild(options);
}

async function spawnWorker(options: SpawnOptions): Promise<Spawned> {
  const id = options.id ?? 0;
  const entry = resolveEntry(options.entry);
  const worker = new Worker(entry, { type: "module" });
  let where = describeWhere("thread", id, Deno.pid);
  let settled = false;
  let resolveDone!: (value: unknown) => void;
  let rejectDone!: (error: unknown) => void;
  const done = new Promise<unknown>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  done.catch(() => {});
  const link = new ThreadLink(
    (wire, transfer) => worker.postMessage(wire, transfer),
    ({ envelope, bytes }) => {
      const e = envelope as Envelope;
      if (e.t === "m") channel.push({ data: e.data, bytes });
      else if (e.t === "ready") ready();
      else if (e.t === "done") finish(undefined, e.value);
      else if (e.t === "fail") finish(fromErrorInfo(e.error));
    },
  );
  const post = (envelope: Envelope, bytes?: Uint8Array, transfer = false) =>
    link.send(envelope, bytes, transfer);
  const channel = new QueueChannel((data, bytes, transfer) =>
    post({ t: "m", data }, bytes, transfer)
  );
  let ready!: () => void;
  const readyPromise = new Promise<void>((resolve) => (ready = resolve));
  const finish = (error?: unknown, value?: unknown) => {
    if (settled) return;
    settled = true;
    channel.close();
    worker.terminate();
    link.dispose();
    if (error !== undefined) rejectDone(error);
    else resolveDone(value);
  };
  worker.onmessage = (event: MessageEvent<ThreadWire>) => link.received(event.data);
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault();
    finish(new WorkerCrashError(where, event.message || "uncaught error"));
  };
  worker.onmessageerror = () => finish(new WorkerCrashError(where, "a message could not be read"));
  await withStartTimeout(
    Promise.race([readyPromise, done.then(() => {})]),
    options.startTimeout ?? 60_000,
    where,
    () => finish(new WorkerCrashError(where, "did not start")),
  );
  if (settled) await done;
  where = describeWhere("thread", id, Deno.pid);
  const region = (options.threadChannel ?? defaultThreadChannel()) === "sab"
    ? new SabRegion()
    : undefined;
  const start: Envelope = {
    t: "start",
    service: options.service,
    init: options.init ?? null,
    id,
    ...(region ? { ring: region.buffer } : {}),
  };
  worker.postMessage({ envelope: start }, options.transfer ?? []);
  if (region) {
    link.attach(region, "parent", (error) => {
      finish(new WorkerCrashError(where, `sent a bad message: ${error}`));
    });
  }
  return {
    kind: "thread",
    id,
    pid: Deno.pid,
    where,
    channel,
    channelKind: link.kind,
    done,
    end: () => post({ t: "end" }),
    kill: () => finish(new WorkerCrashError(where, "killed")),
  };
}

async function spawnChild(options: SpawnOptions): Promise<Spawned> {
  const id = options.id ?? 0;
  const entry = resolveEntry(options.entry);
  const { command, args } = childCommand(entry, options);
  const plan = await planChildChannel(options.channel ?? defaultChannel());
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args: [...args, ...plan.childArgs],
      stdin: "piped",
      stdout: plan.stdout,
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    plan.discard();
    throw error;
  }
  trackChild(child);
  let where = describeWhere("process", id, child.pid);
  let port: PacketPort;
  try {
    port = await plan.attach(child, options.startTimeout ?? 60_000);
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    throw new WorkerCrashError(where, error instanceof Error ? error.message : String(error));
  }
  let stdinOpen = true;
  const post = (envelope: Envelope, bytes?: Uint8Array) => {
    if (stdinOpen) port.send(envelope as Record<string, unknown>, bytes);
  };
  // A message without data reuses one frozen envelope (the port writes it without JSON.stringify).
  const channel = new QueueChannel((data, bytes) =>
    post(data === null ? NULL_MESSAGE : { t: "m", data }, bytes)
  );
  let result: { ok: true; value: unknown } | { ok: false; error: Error } | undefined;
  let ready!: () => void;
  const readyPromise = new Promise<void>((resolve) => (ready = resolve));
  const pump = (async () => {
    try {
      for (;;) {
        const packet = await port.read();
        if (packet === null) break;
        const envelope = packet.json as Envelope;
        if (envelope.t === "m") deliver(channel, envelope, packet.binary);
        else if (envelope.t === "ready") ready();
        else if (envelope.t === "done") result = { ok: true, value: envelope.value };
        else if (envelope.t === "fail") {
          result = { ok: false, error: fromErrorInfo(envelope.error) };
        }
      }
    } catch (error) {
      result ??= { ok: false, error: new WorkerCrashError(where, `sent a bad message: ${error}`) };
    }
  })();
  const closeStdin = () => {
    if (!stdinOpen) return;
    stdinOpen = false;
    port.closeWrite();
  };
  const done = (async () => {
    const [status] = await Promise.all([child.status, pump]);
    channel.close();
    closeStdin();
    if (result?.ok) return result.value;
    if (result && !result.ok) throw result.error;
    const how = status.signal ? `killed by ${status.signal}` : `exited with code ${status.code}`;
    throw new WorkerCrashError(where, `${how} before finishing`);
  })();
  done.catch(() => {});
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  };
  await withStartTimeout(
    Promise.race([readyPromise, done.then(() => {})]),
    options.startTimeout ?? 60_000,
    where,
    kill,
  );
  if (result !== undefined || !stdinOpen) await done;
  where = describeWhere("process", id, child.pid);
  post({ t: "start", service: options.service, init: options.init ?? null, id });
  return {
    kind: "process",
    id,
    pid: child.pid,
    where,
    channel,
    channelKind: plan.kind,
    channelNote: plan.note,
    done,
    end: () => post({ t: "end" }),
    kill,
  };
}
