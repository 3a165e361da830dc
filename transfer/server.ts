/**
 * The STEP v1.0 server of `transfer serve`: wire-compatible with the course's
 * server (field names, status codes, token format, operation labels), without its
 * bugs: lengths in bytes, a reply to every request (BYE excepted, as in the
 * course), caps on every length, names that never become paths, a constant cost
 * per block, atomic completion, and a repeated SAVE that cannot wipe an upload.
 *
 * Extensions: `STATUS` (received and missing blocks), optional `block_md5` on
 * UPLOAD and DOWNLOAD, a client-chosen `block_size`, token lifetimes, a private
 * secret.
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
  blockLength,
  COURSE_SECRET,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_MAX_FILE_SIZE,
  DEFAULT_PORT,
  makeToken,
  MAX_BLOCK_SIZE,
  MAX_NAME_BYTES,
  MAX_REQUEST_JSON,
  md5Hex,
  MIN_BLOCK_SIZE,
  OPERATIONS,
  response,
  type StepJson,
  totalBlocks,
  TYPES,
  verifyToken,
} from "./protocol.ts";
import { type KeyPaths, readAtSync, Storage } from "./storage.ts";
import { PacketReceiver, Scratch, writeWithTimeout } from "./receiver.ts";

/** Server settings (JSON-serialisable: workers and children receive them). */
export interface ServerSettings {
  /** Storage root (absolute or relative to the working directory). */
  root: string;
  /** Token secret (default: the course's public one). */
  secret: string;
  /** Token lifetime in seconds; 0: tokens never expire (the course's behaviour). */
  tokenTtl: number;
  /** Largest file size a SAVE may announce. */
  maxFileSize: number;
  /** Milliseconds a connection may stay silent between requests. */
  idleTimeoutMs: number;
  /** Milliseconds the rest of a request may take once its header has arrived. */
  requestTimeoutMs: number;
}

/** Default settings, as `transfer serve` shows them in `--help`. */
export const DEFAULT_SETTINGS: ServerSettings = {
  root: "step-storage",
  secret: COURSE_SECRET,
  tokenTtl: 0,
  maxFileSize: DEFAULT_MAX_FILE_SIZE,
  idleTimeoutMs: 300_000,
  requestTimeoutMs: 30_000,
};

/** One log line, sent by a handler through `emit`. */
export interface ServerLogEvent {
  level: "info" | "error";
  line: string;
}

/** What the server does with one request. */
export interface Outcome {
  /** The reply; absent for BYE (the course sends none). */
  reply?: { json: StepJson; binary?: Uint8Array };
  /** Close the connection after the reply. */
  close?: boolean;
  /** Log line, or absent for the routine blocks of an upload or download. */
  log?: string;
}

const storages = new Map<string, Storage>();

/** The storage of a root, one per isolate (upload state is shared by its connections). */
export function storageFor(root: string): Storage {
  let storage = storages.get(root);
  if (!storage) {
    storage = new Storage(root);
    storages.set(root, storage);
  }
  return storage;
}

const byteLength = (text: string) => new TextEncoder().encode(text).length;

/** The `key` field: absent, present but unusable, or a usable key. */
type KeyField = { kind: "missing" } | { kind: "bad" } | { kind: "ok"; value: string };

function isIndex(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

/**
 * Handles one decoded request. Pure protocol logic over the storage: no sockets,
 * so tests can call it directly.
 */
export async function handleRequest(
  storage: Storage,
  settings: ServerSettings,
  json: StepJson,
  binary: Uint8Array,
  scratch: Scratch = new Scratch(),
): Promise<Outcome> {
  const reply = (
    operation: string,
    status: number,
    type: string,
    message: string,
    payload: StepJson = {},
    bin?: Uint8Array,
  ): Outcome => ({
    reply: { json: response(operation, status, type, message, payload), binary: bin },
    log: `${type} ${operation} -> ${status} ${message}`,
  });
  if (json.direction === "EARTH") {
    return reply("3BODY", 333, "DANGEROUS", "DO NOT ANSWER! DO NOT ANSWER! DO NOT ANSWER!");
  }
  for (const field of ["operation", "direction", "type"]) {
    if (!(field in json)) {
      return reply("ERROR", 400, "ERROR", `Compulsory field ${field} is missing.`);
    }
  }
  const { operation, type } = json;
  if (json.direction !== "REQUEST") {
    return reply("ERROR", 407, "ERROR", `Wrong direction. Should be "REQUEST"`);
  }
  if (typeof operation !== "string" || !(OPERATIONS as readonly string[]).includes(operation)) {
    return reply("ERROR", 408, "ERROR", `Operation ${String(operation)} is not allowed`);
  }
  if (typeof type !== "string" || !(TYPES as readonly string[]).includes(type)) {
    return reply("ERROR", 409, "ERROR", `Type ${String(type)} is not allowed`);
  }
  if (operation === "LOGIN") return login(json, type, settings, reply);
  const check = verifyToken(json.token, { secret: settings.secret, ttlSeconds: settings.tokenTtl });
  if (!check.ok) return reply(operation, 403, "AUTH", check.message);
  const user = check.user;
  if (operation === "BYE") return { close: true, log: `${user} BYE` };
  if (type === "AUTH") return reply(operation, 409, "AUTH", `Type AUTH only allows LOGIN.`);
  const withUser = (outcome: Outcome): Outcome =>
    outcome.log ? { ...outcome, log: `${user} ${outcome.log}` } : outcome;
  try {
    if (type === "DATA") return withUser(dataRequest(storage, user, operation, json, reply));
    return withUser(
      await fileRequest(storage, settings, user, operation, json, binary, reply, scratch),
    );
  } catch (error) {
    // Disk full, permissions, ...: a clear error for this request, the server goes on.
    const label = type === "FILE" && ["DOWNLOAD", "DELETE"].includes(operation) ? "GET" : operation;
    return withUser(
      reply(
        label,
        500,
        type,
        `Storage error: ${errorMessage(error).replace(/\s*\(os error \d+\).*$/, "")}`,
      ),
    );
  }
}

type ReplyFn = (
  operation: string,
  status: number,
  type: string,
  message: string,
  payload?: StepJson,
  bin?: Uint8Array,
) => Outcome;

function login(json: StepJson, type: string, settings: ServerSettings, reply: ReplyFn): Outcome {
  if (type !== "AUTH") return reply("LOGIN", 409, "AUTH", "Type of LOGIN has to be AUTH.");
  if (!("username" in json)) {
    return reply("LOGIN", 410, "AUTH", `"username" has to be a field for LOGIN`);
  }
  if (!("password" in json)) {
    return reply("LOGIN", 410, "AUTH", `"password" has to be a field for LOGIN`);
  }
  const { username, password } = json;
  if (typeof username !== "string" || byteLength(username) > MAX_NAME_BYTES) {
    return reply(
      "LOGIN",
      410,
      "AUTH",
      `"username" must be a string of at most ${MAX_NAME_BYTES} bytes`,
    );
  }
  if (typeof password !== "string") {
    return reply("LOGIN", 410, "AUTH", `"password" must be a string`);
  }
  if (md5Hex(username) !== password.toLowerCase()) {
    return reply("LOGIN", 401, "AUTH", `"Password error for login.`);
  }
  const { token, expiresAt } = makeToken(username, {
    secret: settings.secret,
    ttlSeconds: settings.tokenTtl,
  });
  const extra = expiresAt === null ? {} : { token_ttl: settings.tokenTtl, expires_at: expiresAt };
  const outcome = reply("LOGIN", 200, "AUTH", "Login successfully", { token, ...extra });
  return { ...outcome, log: `${username} AUTH LOGIN -> 200` };
}

function keyField(json: StepJson): KeyField {
  if (!("key" in json)) return { kind: "missing" };
  const key = json.key;
  if (typeof key !== "string" || key === "" || byteLength(key) > MAX_NAME_BYTES) {
    return { kind: "bad" };
  }
  return { kind: "ok", value: key };
}

function dataRequest(
  storage: Storage,
  user: string,
  operation: string,
  json: StepJson,
  reply: ReplyFn,
): Outcome {
  const badKey = (op: string) =>
    reply(
      op,
      410,
      "DATA",
      `Field "key" must be a non-empty string of at most ${MAX_NAME_BYTES} bytes.`,
    );
  if (operation === "SAVE") {
    const field = keyField(json);
    if (field.kind === "bad") return badKey("SAVE");
    const key = field.kind === "ok" ? field.value : crypto.randomUUID();
    const paths = storage.paths(user, key);
    const staging = `${paths.data}.${crypto.randomUUID()}.tmp`;
    Deno.writeTextFileSync(staging, JSON.stringify(json));
    try {
      // A hard link never replaces an existing value: exactly one SAVE of a key wins.
      Deno.linkSync(staging, paths.data);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        return reply("SAVE", 402, "DATA", `This key "${key}" is existing.`);
      }
      throw error;
    } finally {
      Deno.removeSync(staging);
    }
    return reply("SAVE", 200, "DATA", `Data is saved with key "${key}"`, { key });
  }
  if (operation === "GET" || operation === "DELETE") {
    const field = keyField(json);
    if (field.kind !== "ok") {
      if (field.kind === "bad") return badKey(operation);
      return reply(
        operation,
        410,
        "DATA",
        `Field "key" is missing for DATA ${operation === "GET" ? "GET" : "delete"}.`,
      );
    }
    const key = field.value;
    const paths = storage.paths(user, key);
    if (operation === "GET") {
      let stored: StepJson;
      try {
        stored = JSON.parse(Deno.readTextFileSync(paths.data));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          return reply("GET", 404, "DATA", `The key ${key} is not existing.`);
        }
        throw error;
      }
      return reply("GET", 200, "DATA", "OK", stored);
    }
    try {
      Deno.removeSync(paths.data);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        return reply("DELETE", 404, "DATA", `The "key" ${key} is not existing.`);
      }
      throw error;
    }
    return reply("DELETE", 200, "DATA", `The "key" ${key} is deleted.`, { key });
  }
  return reply(operation, 408, "DATA", `Operation ${operation} is not allowed for type DATA.`);
}

function requestedBlockSize(json: StepJson): number | string {
  if (!("block_size" in json)) return DEFAULT_BLOCK_SIZE;
  const value = json.block_size;
  if (!isIndex(value) || value < MIN_BLOCK_SIZE || value > MAX_BLOCK_SIZE) {
    return `Field "block_size" must be an integer from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE}.`;
  }
  return value;
}

async function fileRequest(
  storage: Storage,
  settings: ServerSettings,
  user: string,
  operation: string,
  json: StepJson,
  binary: Uint8Array,
  reply: ReplyFn,
  scratch: Scratch,
): Promise<Outcome> {
  // The course labels DOWNLOAD errors and every DELETE reply as GET; clients may rely on it.
  const label = operation === "DOWNLOAD" || operation === "DELETE" ? "GET" : operation;
  const field = keyField(json);
  if (field.kind === "bad") {
    return reply(
      label,
      410,
      "FILE",
      `Field "key" must be a non-empty string of at most ${MAX_NAME_BYTES} bytes.`,
    );
  }
  if (operation === "SAVE") {
    const key = field.kind === "ok" ? field.value : undefined;
    return saveFile(storage, settings, user, json, key, reply);
  }
  if (field.kind === "missing") {
    // The course's wording, including "DATA GET" for a FILE GET.
    const what = { GET: "DATA GET", UPLOAD: "FILE block uploading", DOWNLOAD: "FILE downloading" }[
      operation as "GET"
    ] ?? `FILE ${operation === "DELETE" ? "delete" : operation}`;
    return reply(label, 410, "FILE", `Field "key" is missing for ${what}.`);
  }
  const key = field.value;
  const paths = storage.paths(user, key);
  switch (operation) {
    case "UPLOAD":
      return await uploadBlock(storage, paths, key, json, binary, reply);
    case "GET":
      return await downloadPlan(storage, paths, key, json, reply);
    case "DOWNLOAD":
      return downloadBlock(storage, paths, key, json, reply, scratch);
    case "DELETE":
      return deleteFile(storage, paths, key, reply);
    case "STATUS":
      return await status(storage, paths, key, reply);
  }
  return reply(operation, 408, "FILE", `Operation ${operation} is not allowed for type FILE.`);
}

function saveFile(
  storage: Storage,
  settings: ServerSettings,
  user: string,
  json: StepJson,
  requestedKey: string | undefined,
  reply: ReplyFn,
): Outcome {
  const key = requestedKey ?? crypto.randomUUID();
  const paths = storage.paths(user, key);
  if (storage.isComplete(paths)) {
    return reply("SAVE", 402, "FILE", `This "key" ${key} is existing.`);
  }
  if (!("size" in json)) return reply("SAVE", 402, "FILE", `This file "size" has to be included`);
  const size = json.size;
  if (!isIndex(size) || size < 0 || size > settings.maxFileSize) {
    return reply(
      "SAVE",
      410,
      "FILE",
      `Field "size" must be an integer from 0 to ${settings.maxFileSize}.`,
    );
  }
  const blockSize = requestedBlockSize(json);
  if (typeof blockSize === "string") return reply("SAVE", 410, "FILE", blockSize);
  // Unlike the course server, a second SAVE never wipes an upload in progress.
  if (!storage.startUpload(paths, { key, size, blockSize })) {
    return reply(
      "SAVE",
      402,
      "FILE",
      `The "key" ${key} is being uploaded: send STATUS to resume it, or DELETE it to start again.`,
    );
  }
  const plan = { key, size, total_block: totalBlocks(size, blockSize), block_size: blockSize };
  return reply("SAVE", 200, "FILE", "This is the upload plan.", plan);
}

async function uploadBlock(
  storage: Storage,
  paths: KeyPaths,
  key: string,
  json: StepJson,
  binary: Uint8Array,
  reply: ReplyFn,
): Promise<Outcome> {
  // The hot path: an upload this isolate already holds needs no file system check.
  if (!storage.cached(paths) && storage.isComplete(paths)) {
    return reply("UPLOAD", 408, "FILE", `The "key" ${key} is completely uploaded.`);
  }
  const state = storage.upload(paths);
  if (state === null) {
    // Completed meanwhile (perhaps by another process), or never saved.
    const message = storage.isComplete(paths)
      ? `The "key" ${key} is completely uploaded.`
      : `The "key" ${key} is not accepted for uploading.`;
    return reply("UPLOAD", 408, "FILE", message);
  }
  if (!("block_index" in json)) {
    return reply("UPLOAD", 410, "FILE", `The "block_index" is compulsory.`);
  }
  const index = json.block_index;
  if (!isIndex(index)) {
    return reply("UPLOAD", 410, "FILE", `The "block_index" must be an integer.`);
  }
  if (index >= state.total) {
    return reply("UPLOAD", 410, "FILE", `The "block_index" exceed the max index.`);
  }
  if (index < 0) return reply("UPLOAD", 410, "FILE", `The "block_index" should >= 0.`);
  if (binary.length !== Storage.blockLength(state, index)) {
    return reply("UPLOAD", 406, "FILE", `The "block_size" is wrong.`);
  }
  if ("block_md5" in json && json.block_md5 !== md5Hex(binary)) {
    return reply("UPLOAD", 406, "FILE", `The "block_md5" does not match the block.`);
  }
  storage.writeBlock(state, index, binary);
  const payload: StepJson = { key, block_index: index };
  let log: string | undefined;
  if (state.count === state.total) {
    const result = await storage.complete(state);
    if (result.done) {
      payload.md5 = result.md5;
      log = `FILE UPLOAD ${key} -> 200 complete, md5 ${result.md5}`;
    }
  }
  const outcome = reply("UPLOAD", 200, "FILE", `The block ${index} is uploaded.`, payload);
  return { ...outcome, log };
}

async function downloadPlan(
  storage: Storage,
  paths: KeyPaths,
  key: string,
  json: StepJson,
  reply: ReplyFn,
): Promise<Outcome> {
  if (!storage.isComplete(paths)) {
    if (storage.inProgress(paths)) {
      return reply("GET", 404, "FILE", `The key ${key} is not completely uploaded.`);
    }
    return reply("GET", 404, "FILE", `The key ${key} is not existing.`);
  }
  const blockSize = requestedBlockSize(json);
  if (typeof blockSize === "string") return reply("GET", 410, "FILE", blockSize);
  const size = Deno.statSync(paths.file).size;
  return reply("GET", 200, "FILE", "OK. This is the download plan.", {
    key,
    size,
    total_block: totalBlocks(size, blockSize),
    block_size: blockSize,
    md5: await storage.md5Of(paths),
  });
}

function downloadBlock(
  storage: Storage,
  paths: KeyPaths,
  key: string,
  json: StepJson,
  reply: ReplyFn,
  scratch: Scratch,
): Outcome {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(paths.file, { read: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    if (storage.inProgress(paths)) {
      return reply(
        "GET",
        404,
        "FILE",
        `The "key" ${key} is not completely uploaded. Please upload it first`,
      );
    }
    return reply("GET", 404, "FILE", `The "key" ${key} is not existing.`);
  }
  try {
    if (!("block_index" in json)) {
      return reply("GET", 410, "FILE", `The "block_index" is compulsory.`);
    }
    const index = json.block_index;
    const blockSize = requestedBlockSize(json);
    if (typeof blockSize === "string") return reply("GET", 410, "FILE", blockSize);
    if (!isIndex(index)) return reply("GET", 410, "FILE", `The "block_index" must be an integer.`);
    const size = file.statSync().size;
    if (index >= totalBlocks(size, blockSize)) {
      return reply("GET", 410, "FILE", `The "block_index" exceed the max index.`);
    }
    if (index < 0) return reply("GET", 410, "FILE", `The "block_index" should >= 0.`);
    const length = blockLength(size, blockSize, index);
    const data = readAtSync(file, index * blockSize, length, scratch.take(length));
    const payload: StepJson = { block_index: index, key, size: data.length };
    if (json.block_md5 === true) payload.block_md5 = md5Hex(data);
    return {
      ...reply("DOWNLOAD", 200, "FILE", "An available block.", payload, data),
      log: undefined,
    };
  } finally {
    file.close();
  }
}

function deleteFile(storage: Storage, paths: KeyPaths, key: string, reply: ReplyFn): Outcome {
  if (!storage.isComplete(paths)) {
    if (storage.inProgress(paths)) {
      storage.removeUpload(paths);
      return reply(
        "GET",
        404,
        "FILE",
        `The "key" ${key} is not completely uploaded. The tmp files are deleted.`,
      );
    }
    return reply("GET", 404, "FILE", `The "key" ${key} is not existing.`);
  }
  try {
    Deno.removeSync(paths.file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return reply("GET", 404, "FILE", `The "key" ${key} is not existing.`);
    }
    throw error;
  }
  try {
    Deno.removeSync(paths.md5);
  } catch {
    // No stored hash.
  }
  return reply("GET", 200, "FILE", `The "key" ${key} is deleted.`, { key });
}

async function status(
  storage: Storage,
  paths: KeyPaths,
  key: string,
  reply: ReplyFn,
): Promise<Outcome> {
  const state = storage.upload(paths);
  if (state !== null) {
    storage.refresh(state);
    if (state.count === state.total) await storage.complete(state);
  }
  if (storage.isComplete(paths)) {
    const size = Deno.statSync(paths.file).size;
    return reply("STATUS", 200, "FILE", `The key ${key} is completely uploaded.`, {
      key,
      size,
      complete: true,
      received_count: null,
      missing_blocks: [],
      md5: await storage.md5Of(paths),
    });
  }
  if (state === null) return reply("STATUS", 404, "FILE", `The key ${key} is not existing.`);
  return reply(
    "STATUS",
    200,
    "FILE",
    `The key ${key} is being uploaded: ${state.count} of ${state.total} blocks received.`,
    {
      key,
      size: state.plan.size,
      block_size: state.plan.blockSize,
      total_block: state.total,
      complete: false,
      received_count: state.count,
      missing_blocks: storage.missing(state),
    },
  );
}

const encoder = new TextEncoder();
/** Largest binary part accepted: the largest block plus a margin. */
export const MAX_REQUEST_BINARY = MAX_BLOCK_SIZE + 65536;

defineConnectionHandler<ServerSettings>("transfer.step", async (conn, context) => {
  const settings = context.init;
  const storage = storageFor(settings.root);
  // A real socket (sequential, async and pooled modes) is read and written directly:
  // the stream wrappers cost more per block than the rest of the request.
  const socket = "read" in conn && "write" in conn ? (conn as unknown as Deno.Conn) : null;
  if (socket && "setNoDelay" in socket) (socket as Deno.TcpConn).setNoDelay(true);
  const receiver = new PacketReceiver(socket ?? conn.readable);
  const writer = socket ? null : conn.writable.getWriter();
  const peer = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
  const log = (line: string, level: "info" | "error" = "info") =>
    context.emit({ level, line: `${peer} ${line}` } satisfies ServerLogEvent);
  // Blocks read for DOWNLOAD and replies sent reuse two buffers: no allocation per block.
  const blocks = new Scratch();
  const packets = new Scratch();
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
    await writeWithTimeout(target, packet, timeout, "the client to read a reply");
  };
  const limits = { maxJson: MAX_REQUEST_JSON, maxBinary: MAX_REQUEST_BINARY };
  try {
    for (;;) {
      if (context.signal.aborted) break;
      let packet: { json: Uint8Array; binary: Uint8Array } | null;
      try {
        packet = await receiver.next(limits, settings.idleTimeoutMs, settings.requestTimeoutMs);
      } catch (error) {
        if (!(error instanceof FrameTooLargeError)) throw error;
        // The stream cannot be resynchronised after a length we refuse to read.
        const message = errorMessage(error);
        log(`bad header: ${message}; connection closed`, "error");
        await send(response("ERROR", 400, "ERROR", `${message}; closing the connection.`));
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
      const outcome = await handleRequest(storage, settings, json, packet.binary, blocks);
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
      error instanceof FrameTooLargeError
    ) {
      log(`${errorMessage(error)}; connection closed`, "error");
    } else if (!context.signal.aborted) {
      log(`connection ended: ${errorMessage(error)}`, "error");
    }
  } finally {
    await writer?.close().catch(() => {});
  }
});

/** Options for {@linkcode startServer}. */
export interface StartOptions extends Partial<ServerSettings> {
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
}

/** Starts a STEP server in any mode of shared/server.ts; returns once it accepts connections. */
export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const settings: ServerSettings = {
    root: options.root ?? DEFAULT_SETTINGS.root,
    secret: options.secret ?? DEFAULT_SETTINGS.secret,
    tokenTtl: options.tokenTtl ?? DEFAULT_SETTINGS.tokenTtl,
    maxFileSize: options.maxFileSize ?? DEFAULT_SETTINGS.maxFileSize,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_SETTINGS.idleTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_SETTINGS.requestTimeoutMs,
  };
  // Create the layout here, so a bad root fails before any worker starts.
  storageFor(settings.root);
  const onLog = options.onLog;
  const server = await serve({
    handler: "transfer.step",
    mode: options.mode ?? "async",
    hostname: options.host ?? "0.0.0.0",
    port: options.port ?? DEFAULT_PORT,
    workers: options.workers,
    perConnection: options.perConnection,
    init: settings,
    entry: options.entry,
    backlog: options.backlog,
    maxConnections: options.maxConnections,
    signal: options.signal,
    onEvent: onLog ? (event) => onLog(event as ServerLogEvent) : undefined,
  });
  const close = server.close;
  return {
    ...server,
    close: async () => {
      await close();
      // Uploads in progress stay on disk for a later resume; only their handles close.
      storages.get(settings.root)?.close();
      storages.delete(settings.root);
    },
  };
}
