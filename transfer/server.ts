/**
 * The STEP v1.0 server of `transfer serve`: wire-compatible with the course's
 * server (field names, status codes, token format, operation labels), without its
 * bugs: lengths in bytes, a reply to every request (BYE excepted, as in the
 * course), caps on every length, names that never become paths, a constant cost
 * per block, atomic completion, and a repeated SAVE that cannot wipe an upload.
 *
 * Extensions: `STATUS` (received and missing blocks as ranges), optional
 * `block_md5` on UPLOAD and DOWNLOAD, a client-chosen `block_size`, token
 * lifetimes, LOGIN `capabilities`, a random secret per storage root.
 *
 * Bounds against hostile clients: receive buffers grow with bytes received, never
 * with announced lengths, and all connections of a worker share one buffer budget
 * (`maxBuffered`); a plan's files are open only while a connection writes to it;
 * plans in progress are capped per user and in total and expire (`planTtl`).
 * Request handling is in requests.ts, storage in storage.ts.
 *
 * The handler is registered at import time, so it runs in every server mode of
 * shared/server.ts; it reports one log line per operation through `emit`.
 *
 * @module
 */
import { parseStepJson } from "../shared/codec.ts";
import { errorMessage, FrameTooLargeError, ProtocolError, TimeoutError } from "../shared/errors.ts";
import { defineConnectionHandler, type RunningServer, serve } from "../shared/server.ts";
import type { Mode } from "../shared/mode.ts";
import {
  DEFAULT_MAX_FILE_SIZE,
  DEFAULT_PORT,
  MAX_BLOCK_SIZE,
  MAX_REQUEST_JSON,
  response,
  type StepJson,
} from "./protocol.ts";
import { DEFAULT_PLAN_LIMITS, Storage, UploadSession } from "./storage.ts";
import {
  BusyError,
  ByteBudget,
  Deadline,
  PacketReceiver,
  Scratch,
  writeWithTimeout,
} from "./receiver.ts";
import { handleRequest, type ServerSettings } from "./requests.ts";
import { startTlsFront, type TlsFront, type TlsKeyPair } from "./tls.ts";

export type { Outcome, ServerSettings } from "./requests.ts";
export { handleRequest } from "./requests.ts";

/** Default settings, as `transfer serve` shows them in `--help` (`secret` "": the root's own). */
export const DEFAULT_SETTINGS: ServerSettings = {
  root: "step-storage",
  secret: "",
  tokenTtl: 0,
  maxFileSize: DEFAULT_MAX_FILE_SIZE,
  idleTimeoutMs: 300_000,
  requestTimeoutMs: 30_000,
  maxBuffered: 256 << 20,
  maxPlansPerUser: DEFAULT_PLAN_LIMITS.maxPlansPerUser,
  maxPlans: DEFAULT_PLAN_LIMITS.maxPlans,
  planTtl: DEFAULT_PLAN_LIMITS.planTtlSeconds,
};

/** One log line, sent by a handler through `emit`. */
export interface ServerLogEvent {
  level: "info" | "error";
  line: string;
}

/** Name of the file in the storage root that holds its token secret. */
export const SECRET_FILE = ".step-secret";

/**
 * The token secret of a storage root: read from `<root>/.step-secret`, or made
 * (32 random bytes, hex) and written there with mode 0600 on first use, so tokens
 * survive a restart and cannot be forged by anyone who read the course's code.
 */
export function rootSecret(root: string): string {
  const path = `${root}/${SECRET_FILE}`;
  Deno.mkdirSync(root, { recursive: true });
  try {
    const secret = Deno.readTextFileSync(path).trim();
    if (secret.length >= 16) return secret;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const secret = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const staging = `${path}.${crypto.randomUUID()}`;
  Deno.writeTextFileSync(staging, secret + "\n", { mode: 0o600, createNew: true });
  Deno.chmodSync(staging, 0o600);
  try {
    // A link never replaces: two servers starting together agree on the first secret.
    Deno.linkSync(staging, path);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  } finally {
    Deno.removeSync(staging);
  }
  return Deno.readTextFileSync(path).trim();
}

const storages = new Map<string, Storage>();

const budgets = new Map<string, ByteBudget>();

/** The storage of a root, one per isolate (upload state is shared by its connections). */
export function storageFor(
  settings: Pick<ServerSettings, "root"> & Partial<ServerSettings>,
): Storage {
  let storage = storages.get(settings.root);
  if (!storage) {
    storage = new Storage(settings.root, {
      maxPlansPerUser: settings.maxPlansPerUser ?? DEFAULT_SETTINGS.maxPlansPerUser,
      maxPlans: settings.maxPlans ?? DEFAULT_SETTINGS.maxPlans,
      planTtlSeconds: settings.planTtl ?? DEFAULT_SETTINGS.planTtl,
    }, settings.entry);
    storages.set(settings.root, storage);
  }
  return storage;
}

/** The buffer budget of a root's server in this isolate. */
function budgetFor(settings: ServerSettings): ByteBudget {
  let budget = budgets.get(settings.root);
  if (!budget) {
    budget = new ByteBudget(settings.maxBuffered);
    budgets.set(settings.root, budget);
  }
  return budget;
}

const encoder = new TextEncoder();
/** Largest binary part accepted: the largest block plus a margin. */
export const MAX_REQUEST_BINARY = MAX_BLOCK_SIZE + 65536;

defineConnectionHandler<ServerSettings>("transfer.step", async (conn, context) => {
  const settings = context.init;
  const storage = storageFor(settings);
  const budget = budgetFor(settings);
  const session = new UploadSession(storage);
  // A real socket (sequential, async and pooled modes) is read and written directly:
  // the stream wrappers cost more per block than the rest of the request.
  const socket = "read" in conn && "write" in conn ? (conn as unknown as Deno.Conn) : null;
  if (socket && "setNoDelay" in socket) (socket as Deno.TcpConn).setNoDelay(true);
  // One timer watches every read and write of a real socket (closing it on expiry).
  const deadline = socket
    ? new Deadline(() => {
      try {
        socket.close();
      } catch {
        // Already closed.
      }
    })
    : null;
  const receiver = new PacketReceiver(socket ?? conn.readable, budget, undefined, deadline);
  const writer = socket ? null : conn.writable.getWriter();
  const peer = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
  const log = (line: string, level: "info" | "error" = "info") =>
    context.emit({ level, line: `${peer} ${line}` } satisfies ServerLogEvent);
  // Blocks read for DOWNLOAD and replies sent reuse two buffers: no allocation per block.
  const blocks = new Scratch(16 * 1024, budget);
  const packets = new Scratch(16 * 1024, budget);
  const send = async (json: StepJson, binary: Uint8Array = new Uint8Array(0)) => {
    const jsonBytes = encoder.encode(JSON.stringify(json));
    const packet = packets.take(8 + jsonBytes.length + binary.length);
    const view = new DataView(packet.buffer, packet.byteOffset, 8);
    view.setUint32(0, jsonBytes.length);
    view.setUint32(4, binary.length);
    packet.set(jsonBytes, 8);
    packet.set(binary, 8 + jsonBytes.length);
    const timeout = settings.requestTimeoutMs;
    const target = socket ?? {
      write: async (p: Uint8Array) => {
        await writer!.write(p.slice());
        return p.length;
      },
    };
    await writeWithTimeout(
      target,
      packet,
      timeout,
      "the client to read a reply",
      deadline ?? undefined,
    );
  };
  const limits = { maxJson: MAX_REQUEST_JSON, maxBinary: MAX_REQUEST_BINARY };
  const requestContext = {
    storage,
    settings,
    session,
    scratch: blocks,
    tokens: new Map<string, string>(),
  };
  try {
    for (;;) {
      if (context.signal.aborted) break;
      let packet: { json: Uint8Array; binary: Uint8Array } | null;
      try {
        packet = await receiver.next(limits, settings.idleTimeoutMs, settings.requestTimeoutMs);
      } catch (error) {
        if (!(error instanceof FrameTooLargeError) && !(error instanceof BusyError)) throw error;
        // The stream cannot be resynchronised after a length we refuse to read.
        const message = errorMessage(error);
        log(`bad header: ${message}; connection closed`, "error");
        const status = error instanceof BusyError ? 503 : 400;
        await send(response("ERROR", status, "ERROR", `${message}; closing the connection.`))
          .catch(() => {});
        break;
      }
      if (packet === null) break;
      let json: StepJson;
      try {
        json = parseStepJson(packet.json);
      } catch (error) {
        // The frame was whole, so the stream is still in step: answer and go on.
        log(`bad request: ${errorMessage(error)}`, "error");
        await send(response("ERROR", 400, "ERROR", `${errorMessage(error)}.`));
        continue;
      }
      let outcome;
      try {
        outcome = await handleRequest(requestContext, json, packet.binary);
      } catch (error) {
        if (!(error instanceof BusyError)) throw error;
        outcome = { reply: { json: response("ERROR", 503, "ERROR", `${errorMessage(error)}.`) } };
      }
      if (outcome.log) {
        const status = outcome.reply?.json.status;
        log(outcome.log, typeof status === "number" && status >= 400 ? "error" : "info");
      }
      if (outcome.reply) await send(outcome.reply.json, outcome.reply.binary);
      if (outcome.close) break;
    }
  } catch (error) {
    if (
      error instanceof TimeoutError || error instanceof ProtocolError ||
      error instanceof FrameTooLargeError || error instanceof BusyError
    ) {
      log(`${errorMessage(error)}; connection closed`, "error");
    } else if (!context.signal.aborted) {
      log(`connection ended: ${errorMessage(error)}`, "error");
    }
  } finally {
    deadline?.dispose();
    session.releaseAll();
    receiver.dispose();
    blocks.dispose();
    packets.dispose();
    await writer?.close().catch(() => {});
  }
});

/** Options for {@linkcode startServer}. */
export interface StartOptions extends Partial<Omit<ServerSettings, "entry">> {
  host?: string;
  port?: number;
  mode?: Mode;
  workers?: number;
  /** `thread`/`process`: a worker or child per connection (the course's thread per client). */
  perConnection?: boolean;
  /** Module that registers the handler (default: the main module). */
  entry?: string | URL;
  /** Listen-queue capacity and connection bound (see `ServeOptions`). */
  backlog?: number;
  maxConnections?: number;
  onLog?: (event: ServerLogEvent) => void;
  signal?: AbortSignal;
  /** Serve over TLS: the STEP server listens on loopback behind a TLS front (tls.ts). */
  tls?: TlsKeyPair;
}

/** Starts a STEP server in any mode of shared/server.ts; returns once it accepts connections. */
export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const root = options.root ?? DEFAULT_SETTINGS.root;
  const settings: ServerSettings = {
    ...DEFAULT_SETTINGS,
    ...Object.fromEntries(
      Object.entries(options).filter(([k, v]) => k in DEFAULT_SETTINGS && v !== undefined),
    ),
    root,
    // Resolved here, so every worker and child signs with the same secret.
    secret: options.secret || rootSecret(root),
    entry: options.entry === undefined ? undefined : String(options.entry),
  };
  // Create the layout here, so a bad root fails before any worker starts.
  storageFor(settings);
  const onLog = options.onLog;
  const tls = options.tls;
  const server = await serve({
    handler: "transfer.step",
    mode: options.mode ?? "async",
    hostname: tls ? "127.0.0.1" : options.host ?? "0.0.0.0",
    port: tls ? 0 : options.port ?? DEFAULT_PORT,
    workers: options.workers,
    perConnection: options.perConnection,
    init: settings,
    entry: options.entry,
    backlog: options.backlog,
    maxConnections: options.maxConnections,
    signal: options.signal,
    onEvent: onLog ? (event) => onLog(event as ServerLogEvent) : undefined,
  });
  let front: TlsFront | null = null;
  if (tls) {
    try {
      front = startTlsFront({
        hostname: options.host ?? "0.0.0.0",
        port: options.port ?? DEFAULT_PORT,
        keyPair: tls,
        target: { hostname: "127.0.0.1", port: server.port },
        onError: onLog ? (line) => onLog({ level: "error", line }) : undefined,
      });
    } catch (error) {
      await server.close();
      throw error;
    }
  }
  const close = server.close;
  return {
    ...server,
    ...(front ? { hostname: front.hostname, port: front.port } : {}),
    close: async () => {
      await front?.close();
      await close();
      // Uploads in progress stay on disk for a later resume; only their handles close.
      storages.get(settings.root)?.close();
      storages.delete(settings.root);
      budgets.delete(settings.root);
    },
  };
}
