/**
 * The byte channel between a parent and each child process of `process` mode,
 * carrying STEP packets (`!II`, JSON, bytes). Three kinds, chosen by
 * measurement (see the ipcbench section of the README):
 *
 * - `shm`: shared memory rings through `Deno.dlopen` (Linux, `--allow-ffi`),
 *   futex wake-ups and an adaptive spin (child_channel_shm.ts,
 *   child_channel_shm_endpoint.ts), packets parsed straight from the ring;
 * - `unix`: a Unix domain socket whose path is handed to the child;
 * - `pipes`: the child's stdin and stdout, the portable fallback.
 *
 * `auto` takes the first of these this process may use; a kind that cannot run
 * here falls back to the next, with the reason in {@linkcode ChildChannelPlan.note}.
 * Every kind carries the same packets, so results are identical. With `unix`
 * and `shm` the child's stdin stays open only so that a child whose parent died
 * sees its end and exits.
 *
 * @module
 */
import { concatAll, encodeStepPacket } from "./codec.ts";
import type { ChannelKind, PacketPort } from "./child_channel_port.ts";
import { BufferedReader, type ByteSource } from "./reader.ts";
import { ShmRegion, shmUnavailable } from "./child_channel_shm.ts";
import { ShmEndpoint, shmPort } from "./child_channel_shm_endpoint.ts";

export type { ChannelKind, PacketPort } from "./child_channel_port.ts";

/** Every kind, in the order `auto` prefers them. */
export const CHANNEL_KINDS: readonly ChannelKind[] = ["shm", "unix", "pipes"];

/** A kind, or `auto` (the fastest this process may use). */
export type ChannelChoice = ChannelKind | "auto";

/** Argument prefix that tells a child which channel to open. */
export const CHANNEL_ARG = "--netconc-channel=";

/** Largest parts a packet on the channel may announce. */
export const CHANNEL_LIMITS = { maxJson: 64 << 20, maxBinary: 1 << 30 };

let chosenDefault: ChannelChoice | undefined;

/** Sets the channel kind later `spawn` calls use (`undefined`: back to the default). */
export function setDefaultChannel(choice: ChannelChoice | undefined): void {
  chosenDefault = choice;
}

/** Parses a channel name; throws naming the bad value. */
export function parseChannelChoice(text: string): ChannelChoice {
  const value = text.trim().toLowerCase();
  if (value === "auto" || (CHANNEL_KINDS as readonly string[]).includes(value)) {
    return value as ChannelChoice;
  }
  throw new Error(`Invalid channel '${text}': expected auto, ${CHANNEL_KINDS.join(", ")}`);
}

/** The default: {@linkcode setDefaultChannel}, else `NETCONC_CHANNEL`, else `auto`. */
export function defaultChannel(): ChannelChoice {
  if (chosenDefault) return chosenDefault;
  try {
    if (
      Deno.permissions.querySync({ name: "env", variable: "NETCONC_CHANNEL" }).state === "granted"
    ) {
      const value = Deno.env.get("NETCONC_CHANNEL");
      if (value) return parseChannelChoice(value);
    }
  } catch {
    // No env permission: the default.
  }
  return "auto";
}

function granted(name: "read" | "write" | "net"): boolean {
  try {
    return Deno.permissions.querySync({ name }).state === "granted";
  } catch {
    return false;
  }
}

/** Why a kind cannot run in this process, or `null`. */
export function channelUnavailable(kind: ChannelKind): string | null {
  // Shared memory rings its doorbell over a Unix socket.
  if (kind === "shm") return shmUnavailable() ?? channelUnavailable("unix");
  if (kind === "unix") {
    if (Deno.build.os === "windows") return "no Unix sockets on Windows";
    if (!granted("read") || !granted("write") || !granted("net")) {
      return "a Unix socket needs --allow-read, --allow-write and --allow-net";
    }
  }
  return null;
}

/** The kind a choice gives here, and why it is not the one asked for. */
export function resolveChannel(choice: ChannelChoice): { kind: ChannelKind; note?: string } {
  const order = choice === "auto"
    ? CHANNEL_KINDS
    : [choice, ...CHANNEL_KINDS.slice(CHANNEL_KINDS.indexOf(choice) + 1)];
  const reasons: string[] = [];
  for (const kind of order) {
    const why = channelUnavailable(kind);
    if (why === null) {
      return reasons.length === 0
        ? { kind }
        : { kind, note: `${reasons.join("; ")}: using ${kind}` };
    }
    reasons.push(why);
  }
  return { kind: "pipes", note: reasons.join("; ") };
}

/** Writes queued chunks one after another, merging those queued meanwhile. */
class QueuedWriter {
  #queue: Uint8Array[] = [];
  #busy = false;
  #idle: (() => void)[] = [];
  #closing = false;
  #failed = false;

  constructor(
    readonly write: (bytes: Uint8Array) => Promise<void>,
    readonly close: () => Promise<void> | void,
  ) {}

  push(bytes: Uint8Array): void {
    if (this.#closing || this.#failed) return;
    this.#queue.push(bytes);
    if (!this.#busy) this.#pump();
  }

  end(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (!this.#busy) this.#pump();
  }

  async #pump(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#queue.length > 0) {
        const chunks = this.#queue.splice(0);
        await this.write(chunks.length === 1 ? chunks[0] : concatAll(chunks));
      }
      if (this.#closing) await this.close();
    } catch {
      // The other side is gone: what it did not read is lost with it.
      this.#failed = true;
      this.#queue = [];
    } finally {
      this.#busy = false;
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /** Resolves when nothing is queued or being written. */
  flushed(): Promise<void> {
    if (!this.#busy && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

async function writeAll(
  target: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await target.write(bytes.subarray(offset));
}

function readerPort(
  kind: ChannelKind,
  source: ByteSource | ReadableStream<Uint8Array>,
  send: (packet: Uint8Array) => void,
  closeWrite: () => void,
  onEnd: () => void = () => {},
  flush: () => Promise<void> = () => Promise.resolve(),
): PacketPort {
  const reader = new BufferedReader(source, 256 * 1024);
  let ended = false;
  return {
    kind,
    send: (envelope, bytes) => send(encodeStepPacket(envelope, bytes)),
    async read() {
      if (ended) return null;
      const packet = await reader.readStepPacket(CHANNEL_LIMITS).catch((error) => {
        ended = true;
        onEnd();
        throw error;
      });
      if (packet === null && !ended) {
        ended = true;
        onEnd();
      }
      return packet;
    },
    closeWrite,
    flush,
  };
}

/** What the parent prepares before starting a child. */
export interface ChildChannelPlan {
  kind: ChannelKind;
  /** Why the kind is not the one asked for (a fallback), if so. */
  note?: string;
  /** Arguments the child needs after the child flag. */
  childArgs: string[];
  stdout: "piped" | "null";
  /** Connects to the started child; rejects if it exits or does not connect in time. */
  attach(child: Deno.ChildProcess, timeoutMs: number): Promise<PacketPort>;
  /** Frees what the plan holds if the child never started. */
  discard(): void;
}

/** Prepares the channel for one child (parent side). */
export async function planChildChannel(
  choice: ChannelChoice = defaultChannel(),
): Promise<ChildChannelPlan> {
  const { kind, note } = resolveChannel(choice);
  if (kind === "shm") {
    try {
      return await shmPlan(note);
    } catch (error) {
      return unixOrPipes(`shared memory failed (${error})`);
    }
  }
  if (kind === "unix") return await unixPlan(note);
  return pipesPlan(note);
}

async function unixOrPipes(note: string): Promise<ChildChannelPlan> {
  return channelUnavailable("unix") === null ? await unixPlan(note) : pipesPlan(note);
}

function stdinCloser(child: Deno.ChildProcess): () => void {
  const writer = child.stdin.getWriter();
  let closed = false;
  return () => {
    if (closed) return;
    closed = true;
    writer.close().catch(() => {});
  };
}

function pipesPlan(note?: string): ChildChannelPlan {
  return {
    kind: "pipes",
    note,
    childArgs: [],
    stdout: "piped",
    attach(child) {
      const stdin = child.stdin.getWriter();
      const writer = new QueuedWriter((bytes) => stdin.write(bytes), () => stdin.close());
      return Promise.resolve(
        readerPort(
          "pipes",
          child.stdout!,
          (p) => writer.push(p),
          () => writer.end(),
          () => {},
          () => writer.flushed(),
        ),
      );
    },
    discard() {},
  };
}

function raceChild<T>(
  promise: Promise<T>,
  child: Deno.ChildProcess,
  timeoutMs: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    child.status.then((status) => {
      throw new Error(`exited (code ${status.code}) before ${what}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`did not ${what} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

async function unixPlan(
  note?: string,
): Promise<
  ChildChannelPlan & { accept(child: Deno.ChildProcess, timeoutMs: number): Promise<Deno.UnixConn> }
> {
  const dir = await Deno.makeTempDir({ prefix: "netconc-channel-" });
  const path = `${dir}/c.sock`;
  let listener: Deno.Listener<Deno.UnixConn> | null = null;
  try {
    listener = Deno.listen({ transport: "unix", path });
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    return {
      ...pipesPlan(`a Unix socket could not listen (${error}): using pipes`),
      accept: () => Promise.reject(error),
    };
  }
  const discard = () => {
    try {
      listener?.close();
    } catch {
      // Already closed.
    }
    listener = null;
    Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const accept = async (child: Deno.ChildProcess, timeoutMs: number) => {
    try {
      return await raceChild(listener!.accept(), child, timeoutMs, "connecting its channel");
    } finally {
      discard();
    }
  };
  return {
    kind: "unix",
    note,
    childArgs: [`${CHANNEL_ARG}unix:${path}`],
    stdout: "null",
    accept,
    async attach(child, timeoutMs) {
      const closeStdin = stdinCloser(child);
      return socketPort(await accept(child, timeoutMs), closeStdin);
    },
    discard,
  };
}

function socketPort(conn: Deno.UnixConn, onClose: () => void = () => {}): PacketPort {
  const writer = new QueuedWriter((bytes) => writeAll(conn, bytes), async () => {
    await conn.closeWrite().catch(() => {});
    onClose();
  });
  return readerPort("unix", conn, (p) => writer.push(p), () => writer.end(), () => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }, () => writer.flushed());
}

async function shmPlan(note?: string): Promise<ChildChannelPlan> {
  const region = ShmRegion.create();
  const bell = await unixPlan();
  if (bell.kind !== "unix") {
    region.dispose();
    return bell;
  }
  return {
    kind: "shm",
    note,
    childArgs: [
      `${CHANNEL_ARG}shm:${Deno.pid}:${region.fd}:${
        bell.childArgs[0].slice(CHANNEL_ARG.length + 5)
      }`,
    ],
    stdout: "null",
    async attach(child, timeoutMs) {
      const closeStdin = stdinCloser(child);
      let conn: Deno.UnixConn;
      try {
        conn = await bell.accept(child, timeoutMs);
      } catch (error) {
        region.dispose();
        throw error;
      }
      const endpoint = new ShmEndpoint(region, "parent", conn);
      // A child that exited wrote all it will: read what is left, then end.
      child.status.then(() => endpoint.peerGone());
      return shmPort(endpoint, CHANNEL_LIMITS, () => {
        endpoint.closeWrite();
        closeStdin();
      }, () => {
        endpoint.peerGone();
        child.status.then(() => endpoint.dispose());
      });
    },
    discard: () => {
      bell.discard();
      region.dispose();
    },
  };
}

function writeAllSync(file: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
}

/** The kind this child was started with (from its arguments). */
export function childChannelKind(args: string[] = Deno.args): ChannelKind {
  const spec = args.find((arg) => arg.startsWith(CHANNEL_ARG))?.slice(CHANNEL_ARG.length);
  if (spec?.startsWith("unix:")) return "unix";
  if (spec?.startsWith("shm:")) return "shm";
  return "pipes";
}

/** Opens the child's end of the channel its parent prepared (child side). */
export async function openParentPort(args: string[] = Deno.args): Promise<PacketPort> {
  const spec = args.find((arg) => arg.startsWith(CHANNEL_ARG))?.slice(CHANNEL_ARG.length);
  if (spec?.startsWith("unix:")) {
    const conn = await Deno.connect({ transport: "unix", path: spec.slice(5) });
    return socketPort(conn);
  }
  if (spec?.startsWith("shm:")) {
    const [pid, fd, ...path] = spec.slice(4).split(":");
    const region = ShmRegion.open(Number(pid), Number(fd));
    // The doorbell's end is the parent's end: the child then reads what is left and exits.
    const bell = await Deno.connect({ transport: "unix", path: path.join(":") });
    const endpoint = new ShmEndpoint(region, "child", bell);
    return shmPort(endpoint, CHANNEL_LIMITS, () => endpoint.closeWrite());
  }
  return readerPort(
    "pipes",
    Deno.stdin,
    (p) => writeAllSync(Deno.stdout, p),
    () => {},
  );
}
