/**
 * What the `transfer` server does with one decoded STEP request: pure protocol
 * logic over the storage (no sockets), so tests can call it directly. Course
 * status codes, labels and messages; the extensions (STATUS with missing ranges,
 * client-chosen block sizes, per-block MD5, LOGIN capabilities) on top.
 *
 * Over 500 lines because it mirrors the course server's dispatcher: the checks of
 * every operation in the course's order, each with its exact status and message,
 * read best side by side (docs/step-protocol.md §3 and §6).
 *
 * @module
 */
import { errorMessage } from "../shared/errors.ts";
import {
  blockLength,
  DEFAULT_BLOCK_SIZE,
  makeToken,
  MAX_BLOCK_SIZE,
  MAX_LIST_FILES,
  MAX_NAME_BYTES,
  MAX_PLAN_BLOCKS,
  md5Hex,
  MIN_BLOCK_SIZE,
  OPERATIONS,
  response,
  SERVER_CAPABILITIES,
  type StepJson,
  totalBlocks,
  TYPES,
  verifyToken,
} from "./protocol.ts";
import { type KeyPaths, readAtSync, Storage, type UploadSession } from "./storage.ts";
import { ifPresent } from "./storage_files.ts";
import { type BlockMapScan, rangesToIndices } from "./block_map.ts";
import type { Scratch } from "./receiver.ts";

/** Server settings (JSON-serialisable: workers and children receive them). */
export interface ServerSettings {
  /** Storage root (absolute or relative to the working directory). */
  root: string;
  /** Token secret (resolved before workers start: `--secret`, or the root's own). */
  secret: string;
  /** Token lifetime in seconds; 0: tokens never expire (the course's behaviour). */
  tokenTtl: number;
  /** Largest file size a SAVE may announce. */
  maxFileSize: number;
  /** Milliseconds a connection may stay silent between requests. */
  idleTimeoutMs: number;
  /** Milliseconds the rest of a request may take once its header has arrived. */
  requestTimeoutMs: number;
  /** Bytes all connections of one worker may buffer beyond their base buffers. */
  maxBuffered: number;
  /** Plans in progress one user may have. */
  maxPlansPerUser: number;
  /** Plans in progress in the whole root. */
  maxPlans: number;
  /** Seconds an upload may go without a block before it is removed (0: never). */
  planTtl: number;
  /** Module registering the hash worker (the server's entry; default: the main module). */
  entry?: string;
}

/** What one request needs: the storage, the settings, the connection's uploads and buffer. */
export interface RequestContext {
  storage: Storage;
  settings: ServerSettings;
  session: UploadSession;
  scratch: Scratch;
  /** Tokens this connection sent that verified, and their users. */
  tokens?: Map<string, string>;
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

/** Most missing ranges a STATUS reply lists (the client asks again after sending them). */
export const MAX_STATUS_RANGES = 10_000;
/** Most missing blocks listed one by one (`missing_blocks`, for v1.0-fork clients). */
export const MAX_STATUS_LIST = 1000;

const byteLength = (text: string) => new TextEncoder().encode(text).length;

/** The `key` field: absent, present but unusable, or a usable key. */
type KeyField = { kind: "missing" } | { kind: "bad" } | { kind: "ok"; value: string };

/** Removes a file; false when it was not there (other errors propagate). */
function removeIfThere(path: string): boolean {
  return ifPresent(() => Deno.removeSync(path));
}

function isIndex(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

/**
 * Handles one decoded request. Pure protocol logic over the storage: no sockets,
 * so tests can call it directly.
 */
export async function handleRequest(
  context: RequestContext,
  json: StepJson,
  binary: Uint8Array,
): Promise<Outcome> {
  const { storage, settings } = context;
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
  // A connection sends the same token with every block: remember the ones that
  // verified (only while tokens never expire), instead of an MD5 per request.
  let user = settings.tokenTtl === 0 && typeof json.token === "string"
    ? context.tokens?.get(json.token)
    : undefined;
  if (user === undefined) {
    const check = verifyToken(json.token, {
      secret: settings.secret,
      ttlSeconds: settings.tokenTtl,
    });
    if (!check.ok) return reply(operation, 403, "AUTH", check.message);
    user = check.user;
    if (context.tokens && settings.tokenTtl === 0 && context.tokens.size < 16) {
      context.tokens.set(json.token as string, user);
    }
  }
  if (operation === "BYE") return { close: true, log: `${user} BYE` };
  if (type === "AUTH") return reply(operation, 409, "AUTH", `Type AUTH only allows LOGIN.`);
  const withUser = (outcome: Outcome): Outcome =>
    outcome.log ? { ...outcome, log: `${user} ${outcome.log}` } : outcome;
  try {
    if (type === "DATA") return withUser(dataRequest(storage, user, operation, json, reply));
    return withUser(await fileRequest(context, user, operation, json, binary, reply));
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
  // Course clients read only `token`; ours learn from `capabilities` that this server
  // takes large blocks, pipelined requests and several connections.
  const outcome = reply("LOGIN", 200, "AUTH", "Login successfully", {
    token,
    ...extra,
    capabilities: SERVER_CAPABILITIES,
  });
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
    if (!removeIfThere(paths.data)) {
      return reply("DELETE", 404, "DATA", `The "key" ${key} is not existing.`);
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
  context: RequestContext,
  user: string,
  operation: string,
  json: StepJson,
  binary: Uint8Array,
  reply: ReplyFn,
): Promise<Outcome> {
  const { storage, settings, session, scratch } = context;
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
  if (operation === "LIST") {
    const prefix = json.prefix ?? "";
    if (typeof prefix !== "string" || byteLength(prefix) > MAX_NAME_BYTES) {
      return reply("LIST", 410, "FILE", `Field "prefix" must be a string.`);
    }
    const { files, truncated } = storage.list(user, prefix, MAX_LIST_FILES);
    const payload: StepJson = { files, count: files.length };
    if (truncated) payload.truncated = true;
    return reply("LIST", 200, "FILE", `${files.length} keys.`, payload);
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
      return await uploadBlock(session, paths, key, json, binary, reply);
    case "GET":
      return await downloadPlan(storage, paths, key, json, reply);
    case "DOWNLOAD":
      return downloadBlock(storage, paths, key, json, reply, scratch);
    case "DELETE":
      return deleteFile(storage, paths, key, reply);
    case "STATUS":
      return await status(session, paths, key, reply);
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
  const blocks = totalBlocks(size, blockSize);
  if (blocks > MAX_PLAN_BLOCKS) {
    return reply(
      "SAVE",
      410,
      "FILE",
      `The plan would have ${blocks} blocks (at most ${MAX_PLAN_BLOCKS}): ` +
        `ask for a larger "block_size".`,
    );
  }
  // Unlike the course server, a second SAVE never wipes an upload in progress.
  const refused = storage.startUpload(paths, { key, size, blockSize });
  if (refused === "exists") {
    return reply(
      "SAVE",
      402,
      "FILE",
      `The "key" ${key} is being uploaded: send STATUS to resume it, or DELETE it to start again.`,
    );
  }
  if (refused === "user-cap") {
    return reply(
      "SAVE",
      429,
      "FILE",
      `Too many uploads in progress for this user (${storage.limits.maxPlansPerUser}): ` +
        `finish or DELETE one first.`,
    );
  }
  if (refused === "total-cap") {
    return reply(
      "SAVE",
      503,
      "FILE",
      `The server holds its limit of ${storage.limits.maxPlans} uploads in progress: ` +
        `try again later.`,
    );
  }
  const plan = { key, size, total_block: totalBlocks(size, blockSize), block_size: blockSize };
  return reply("SAVE", 200, "FILE", "This is the upload plan.", plan);
}

async function uploadBlock(
  session: UploadSession,
  paths: KeyPaths,
  key: string,
  json: StepJson,
  binary: Uint8Array,
  reply: ReplyFn,
): Promise<Outcome> {
  const storage = session.storage;
  // The hot path: an upload this connection holds costs one stat to confirm.
  const state = session.upload(paths);
  if (state === null) {
    // Completed (perhaps by another process), never saved, deleted or expired.
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
  // A direct write (direct_writer.ts) waits here for a free buffer: the back-pressure
  // (none for a block read straight into one of its buffers).
  const room = storage.room(state, binary);
  if (room) await room;
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
    md5: await storage.md5Of(paths, key),
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
  if (!removeIfThere(paths.file)) {
    return reply("GET", 404, "FILE", `The "key" ${key} is not existing.`);
  }
  removeIfThere(paths.md5);
  return reply("GET", 200, "FILE", `The "key" ${key} is deleted.`, { key });
}

async function status(
  session: UploadSession,
  paths: KeyPaths,
  key: string,
  reply: ReplyFn,
): Promise<Outcome> {
  const storage = session.storage;
  const state = session.upload(paths);
  let scan: BlockMapScan | null = null;
  if (state !== null) {
    // The map on disk is the truth (other processes write blocks too), read in pieces.
    scan = storage.scan(state, MAX_STATUS_RANGES);
    state.count = scan.received;
    if (state.count === state.total) {
      await storage.complete(state);
      scan = null;
    }
  }
  if (storage.isComplete(paths)) {
    const size = Deno.statSync(paths.file).size;
    return reply("STATUS", 200, "FILE", `The key ${key} is completely uploaded.`, {
      key,
      size,
      complete: true,
      received_count: null,
      missing_count: 0,
      missing_blocks: [],
      missing_ranges: [],
      md5: await storage.md5Of(paths, key),
    });
  }
  if (state === null || scan === null) {
    return reply("STATUS", 404, "FILE", `The key ${key} is not existing.`);
  }
  const missingCount = state.total - scan.received;
  const payload: StepJson = {
    key,
    size: state.plan.size,
    block_size: state.plan.blockSize,
    total_block: state.total,
    complete: false,
    received_count: scan.received,
    missing_count: missingCount,
    missing_ranges: scan.missing,
  };
  if (scan.truncated) payload.missing_ranges_truncated = true;
  // The plain list (the extended v1.0 fork's field) only while it is small.
  if (missingCount <= MAX_STATUS_LIST) payload.missing_blocks = rangesToIndices(scan.missing);
  return reply(
    "STATUS",
    200,
    "FILE",
    `The key ${key} is being uploaded: ${scan.received} of ${state.total} blocks received.`,
    payload,
  );
}
