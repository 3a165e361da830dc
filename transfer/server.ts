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
 * The connection handler (step_handler.ts) is in the registry (registry.ts), so
 * it runs in every server mode of shared/server.ts; it reports one log line per
 * operation through `emit`.
 *
 * @module
 */
import { type RunningServer, serve } from "../shared/server.ts";
import { handlerOf } from "../shared/registry.ts";
import type { Mode } from "../shared/mode.ts";
import { DEFAULT_MAX_FILE_SIZE, DEFAULT_PORT } from "./protocol.ts";
import { DEFAULT_PLAN_LIMITS } from "./storage.ts";
import type { ServerSettings } from "./requests.ts";
import { budgets, type ServerLogEvent, storageFor, storages } from "./step_handler.ts";
import { registry } from "./registry.ts";
import { startTlsFront, type TlsFront, type TlsKeyPair } from "./tls.ts";

export type { Outcome, ServerSettings } from "./requests.ts";
export { handleRequest } from "./requests.ts";
export { type ServerLogEvent, storageFor } from "./step_handler.ts";

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
    handler: handlerOf(registry, "transfer.step"),
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
