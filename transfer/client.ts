/**
 * The STEP v1.0 client of `transfer`: login, upload and download in four modes,
 * resume, delete, status and DATA operations. It never prints: progress and the
 * token go to callbacks, results are returned.
 *
 * Modes (all store the same bytes and check the same MD5):
 * - `sequential`: one connection, one block at a time (lockstep: the only way the
 *   course's Python server can be spoken to);
 * - `async`: one connection, a window of blocks in flight;
 * - `thread` / `process`: the blocks are split into shares run by the task
 *   runner in Web Workers or child processes, each share on its own connection.
 *
 * Over 500 lines because upload and download are each one procedure (plan,
 * resume, hashing choice, shares, verification) best read whole; the connection
 * is connection.ts and the block windows are blocks.ts.
 *
 * @module
 */
import { createMd5 } from "./md5.ts";
import { errorMessage } from "../shared/errors.ts";
import { runTasks } from "../shared/runner.ts";
import { taskOf } from "../shared/registry.ts";
import type { Mode } from "../shared/mode.ts";
import {
  blockLength,
  DEFAULT_BLOCK_SIZE,
  MAX_BLOCK_SIZE,
  request,
  type StepJson,
  totalBlocks,
} from "./protocol.ts";
import { md5File } from "./storage.ts";
import {
  FOLLOW_MIN_BYTES,
  followMinBytes,
  type HashFollower,
  startHashFollower,
} from "./hash_follow.ts";
import { backgroundMd5Available, md5FileInBackground } from "./md5_background.ts";
import {
  receiveBlocks,
  sendBlocks,
  sendBlocksAhead,
  type ShareInput,
  splitShares,
} from "./blocks.ts";
import { READ_AHEAD_MIN_BLOCK, ReadAhead } from "./read_ahead.ts";
import { DIRECT_MIN_BYTES, DirectWriter } from "./direct_writer.ts";
import {
  type ConnectOptions,
  Md5MismatchError,
  StepConnection,
  StepStatusError,
} from "./connection.ts";
import { registry } from "./registry.ts";

export {
  type ConnectOptions,
  Md5MismatchError,
  simpleRequest,
  StepConnection,
  StepStatusError,
} from "./connection.ts";
export { splitShares } from "./blocks.ts";

/** Progress callback: bytes done of bytes total. */
export type ProgressFn = (done: number, total: number) => void;

/** Options shared by upload and download. */
export interface TransferOptions extends ConnectOptions {
  key: string;
  /**
   * `auto` (default): the fast plan against this project's server (large blocks, a
   * window of pipelined requests, hashing overlapped), the course's lockstep with
   * 20480-byte blocks against any other. A mode forces its plan.
   */
  mode?: TransferMode;
  /** Connections for thread and process modes (default 2). */
  streams?: number;
  /** Blocks in flight per connection in async, thread and process modes (default 8). */
  window?: number;
  /** Block size to ask for (default: 20480, the course's; the fast plan's in `auto`). */
  blockSize?: number;
  /** Continue an interrupted transfer. */
  resume?: boolean;
  /** Send and check a per-block MD5 (extension). */
  blockMd5?: boolean;
  /** Bytes per second across all connections of the transfer (`--limit-rate`). */
  limitRate?: number;
  /** Module registering the share tasks, for thread and process modes (default: main module). */
  entry?: string | URL;
  onToken?: (token: string) => void;
  onProgress?: ProgressFn;
}

/** A client mode, or `auto`. */
export type TransferMode = Mode | "auto";

/** The fast plan's block size (our server only). */
export const FAST_BLOCK_SIZE = 2 << 20;
/** The fast plan's blocks in flight. */
export const FAST_WINDOW = 4;

/** What an upload or download did. */
export interface TransferResult {
  key: string;
  path: string;
  size: number;
  blockSize: number;
  blocks: number;
  /** Blocks moved in this run (fewer than `blocks` after a resume). */
  blocksSent: number;
  mode: Mode;
  /** `fast` (our server's extensions) or `lockstep` (the course's way). */
  plan: "fast" | "lockstep" | "forced";
  streams: number;
  token: string;
  localMd5: string;
  serverMd5: string;
  elapsedMs: number;
  /**
   * Downloads: how the file was written, `direct` (direct_writer.ts: past the page
   * cache, hashed from memory) or `buffered`.
   */
  writer?: "direct" | "buffered";
}

/** Files at least this large are hashed in a worker during a one-connection upload. */
export const HASH_IN_WORKER_BYTES = FOLLOW_MIN_BYTES;

/** Files at least this large are hashed on another thread (small ones in line as they go out). */
function hashElsewhereBytes(): number {
  return backgroundMd5Available() ? followMinBytes() : HASH_IN_WORKER_BYTES;
}

/**
 * The MD5 of a file on another thread: Deno's blocking pool through FFI when it
 * can (nothing to start), else a worker.
 */
async function md5InWorker(
  path: string,
  size: number,
  entry: string | URL | undefined,
): Promise<string> {
  const background = await md5FileInBackground(path, size);
  if (background !== null) return background;
  for await (
    const outcome of runTasks(taskOf(registry, "transfer.md5-file"), [path], {
      mode: "thread",
      workers: 1,
      entry,
    })
  ) {
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }
  throw new Error(`hashing ${path} returned nothing`);
}

/** Runs shares in workers or children, reporting progress as each share ends. */
async function runShares<T extends { bytes: number }>(
  task: "transfer.upload-share" | "transfer.download-share",
  inputs: ShareInput[],
  mode: "thread" | "process",
  streams: number,
  entry: string | URL | undefined,
  progress: (bytes: number) => void,
): Promise<T[]> {
  const results: T[] = [];
  for await (
    const outcome of runTasks(taskOf(registry, task), inputs, {
      mode,
      workers: streams,
      concurrency: 1,
      entry,
    })
  ) {
    if (!outcome.ok) throw outcome.error;
    const value = outcome.value as unknown as T;
    results.push(value);
    progress(value.bytes);
  }
  return results;
}

function baseName(path: string): string {
  return path.replace(/\/+$/, "").split("/").pop() ?? path;
}

/** An integer field of a server's plan, checked against bounds (never trust a length). */
function planField(json: StepJson, field: string, min: number, max: number): number {
  const value = json[field];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(
      `The server's plan has a bad "${field}": ${
        JSON.stringify(value)
      } (expected ${min} to ${max})`,
    );
  }
  return value;
}

/** The plan's block size (the course's servers always send one; 20480 if absent). */
function planBlockSize(json: StepJson): number {
  if (!("block_size" in json)) return DEFAULT_BLOCK_SIZE;
  return planField(json, "block_size", 1, MAX_BLOCK_SIZE);
}

/**
 * The STATUS reply's missing blocks, each checked to be a block of the file: from
 * `missing_ranges` (this project's server) or the plain `missing_blocks` list.
 */
function missingBlocks(json: StepJson, total: number): number[] {
  const ok = (i: unknown): i is number =>
    typeof i === "number" && Number.isSafeInteger(i) && i >= 0 && i < total;
  const ranges = json.missing_ranges;
  if (Array.isArray(ranges)) {
    const out: number[] = [];
    for (const range of ranges) {
      if (!Array.isArray(range) || !ok(range[0]) || !ok(range[1]) || range[1] < range[0]) {
        throw new Error("The server's STATUS reply has a bad missing_ranges list");
      }
      for (let i = range[0]; i <= range[1] && out.length < total; i++) out.push(i);
    }
    return out;
  }
  const list = json.missing_blocks;
  if (!Array.isArray(list) || !list.every(ok)) {
    throw new Error("The server's STATUS reply has a bad missing_blocks list");
  }
  return list.slice();
}

/** The plan of a transfer: mode, connections, window, block size. */
interface Plan {
  mode: Mode;
  plan: "fast" | "lockstep" | "forced";
  streams: number;
  window: number;
  blockSize: number;
}

/**
 * The plan of a transfer once the server is known: in `auto`, the fast plan when
 * the LOGIN reply announced pipelining and large blocks (this project's server),
 * else the course's lockstep with 20480-byte blocks; a forced mode keeps its
 * meaning (one block in flight in `sequential`, several connections in `thread`
 * and `process`).
 */
export function resolvePlan(options: TransferOptions, capabilities: string[]): Plan {
  const requested = options.mode ?? "auto";
  if (requested === "auto") {
    const fast = capabilities.includes("pipeline") && capabilities.includes("block_size");
    if (!fast) {
      return {
        mode: "sequential",
        plan: "lockstep",
        streams: 1,
        window: 1,
        blockSize: DEFAULT_BLOCK_SIZE,
      };
    }
    return {
      mode: "async",
      plan: "fast",
      streams: 1,
      window: Math.max(1, options.window ?? FAST_WINDOW),
      blockSize: options.blockSize ?? FAST_BLOCK_SIZE,
    };
  }
  const mode = requested;
  return {
    mode,
    plan: "forced",
    streams: mode === "thread" || mode === "process" ? Math.max(1, options.streams ?? 2) : 1,
    window: mode === "sequential" ? 1 : Math.max(1, options.window ?? 8),
    blockSize: options.blockSize ?? DEFAULT_BLOCK_SIZE,
  };
}

/** Connects, logs in and resolves the plan; the caller says BYE (`connection.bye(token)`). */
async function openSession(
  options: TransferOptions,
  timeoutMs: number,
): Promise<{ connection: StepConnection; token: string; resolved: Plan }> {
  const connection = await StepConnection.open(options.host, options.port, timeoutMs, options.tls);
  try {
    const token = await connection.login(options.id);
    options.onToken?.(token);
    return { connection, token, resolved: resolvePlan(options, connection.capabilities) };
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** What the block movers need: the options, the plan, and what this transfer moves. */
function shareInput(
  options: TransferOptions,
  plan: Plan,
  moved: Pick<ShareInput, "token" | "path" | "size" | "blockSize" | "indices">,
): ShareInput {
  return {
    ...moved,
    host: options.host,
    port: options.port,
    timeoutMs: options.timeoutMs ?? 30_000,
    key: options.key,
    sendBlockSize: moved.blockSize !== DEFAULT_BLOCK_SIZE,
    window: plan.window,
    blockMd5: options.blockMd5 ?? false,
    // Each of the `streams` workers gets its share of the rate.
    rate: options.limitRate ? options.limitRate / plan.streams : 0,
    tls: options.tls,
  };
}

/** The result of a finished transfer: what moved, by which plan, and both MD5s. */
function finished(
  started: number,
  moved: Pick<TransferResult, "key" | "path" | "size" | "blockSize" | "blocks" | "blocksSent">,
  plan: Plan,
  token: string,
  md5s: Pick<TransferResult, "localMd5" | "serverMd5">,
): TransferResult {
  return {
    ...moved,
    mode: plan.mode,
    plan: plan.plan,
    streams: plan.streams,
    token,
    ...md5s,
    elapsedMs: performance.now() - started,
  };
}

/** Uploads a file; resolves when the server's MD5 matches ours. */
export async function upload(path: string, options: TransferOptions): Promise<TransferResult> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? 30_000;
  const size = await localFileSize(path);
  const key = options.key;
  // A large file's hash starts at once, on another thread, and overlaps everything
  // after. On one connection, the file is read ahead in the fast plan's blocks and
  // hashed from the same buffers, which the blocks are then sent from (read_ahead.ts);
  // a plan that cannot use them leaves it a hash of the file.
  const large = size >= hashElsewhereBytes() && !options.resume;
  // Only where the plan's blocks will be large: the lockstep (20 KiB blocks, forced or
  // against the course's server) keeps the plain background hash, which competes less
  // with its round trips.
  const requested = options.mode ?? "auto";
  const expectedBlock = options.blockSize ??
    (requested === "auto" ? FAST_BLOCK_SIZE : DEFAULT_BLOCK_SIZE);
  const ahead = large && ["auto", "async", "sequential"].includes(requested) &&
      expectedBlock >= READ_AHEAD_MIN_BLOCK
    ? ReadAhead.open(path, size, expectedBlock)
    : null;
  const early = ahead ? ahead.md5() : large ? md5InWorker(path, size, options.entry) : null;
  early?.catch(() => {});
  const opened = await openSession(options, timeoutMs).catch(async (error) => {
    await ahead?.close();
    throw error;
  });
  const { connection, token, resolved } = opened;
  try {
    const { mode, streams, window, blockSize: planned } = resolved;
    let blockSize = planned;
    let indices: number[] | null = null;
    let serverMd5: string | undefined;
    if (options.resume) {
      const reply = await connection.call(request("FILE", "STATUS", { token, key }));
      if (reply.json.status === 200) {
        if (reply.json.size !== size) {
          throw new Error(
            `Cannot resume '${key}': the server holds ${reply.json.size} bytes, the file has ${size}`,
          );
        }
        if (reply.json.complete === true) serverMd5 = String(reply.json.md5);
        else {
          blockSize = planBlockSize(reply.json);
          indices = missingBlocks(reply.json, totalBlocks(size, blockSize));
        }
      }
      // 404: nothing to resume; 408: a server without STATUS (the course's). Start afresh.
    }
    if (indices === null && serverMd5 === undefined) {
      const fields: StepJson = { token, key, size };
      if (blockSize !== DEFAULT_BLOCK_SIZE) fields.block_size = blockSize;
      const plan = await connection.expect200(request("FILE", "SAVE", fields));
      blockSize = planBlockSize(plan.json);
      if (typeof plan.json.md5 === "string") serverMd5 = plan.json.md5;
      indices = Array.from({ length: totalBlocks(size, blockSize) }, (_, i) => i);
    }
    indices ??= [];
    const total = totalBlocks(size, blockSize);
    let done = (total - indices.length) * blockSize;
    const progress = (bytes: number) => {
      done = Math.min(size, done + bytes);
      options.onProgress?.(done, size);
    };
    progress(0);
    const input = shareInput(options, resolved, { token, path, size, blockSize, indices });
    let localMd5: string;
    if (mode === "sequential" || mode === "async") {
      // A large file is hashed in a worker while this thread sends it; a small one is
      // hashed here as its blocks go out in order (no second read, no worker start-up).
      const inWorker = early ??
        (size >= hashElsewhereBytes() ? md5InWorker(path, size, options.entry) : null);
      inWorker?.catch(() => {});
      const hasher = inWorker === null && indices.length === total ? createMd5() : null;
      const fromAhead = ahead !== null && ahead.blockSize === blockSize &&
        indices.length === total && !input.blockMd5 && input.rate === 0;
      if (!fromAhead) ahead?.detach();
      const md5 = fromAhead
        ? await sendBlocksAhead(connection, input, ahead, (_, data) => progress(data.length))
        : await sendBlocks(connection, input, (_, data) => {
          hasher?.update(data);
          progress(data.length);
        });
      serverMd5 ??= md5;
      // A worker that could not start (a loaded machine) costs a hash at the end.
      localMd5 = inWorker
        ? await inWorker.catch(() => md5File(path))
        : hasher
        ? hasher.digest()
        : await md5File(path);
    } else {
      ahead?.detach();
      const shares = splitShares(indices, streams * 4).map((share) => ({
        ...input,
        indices: share,
      }));
      // The file is hashed here while the workers send it: the two overlap.
      const [results, md5] = await Promise.all([
        runShares<{ md5: string | null; bytes: number }>(
          "transfer.upload-share",
          shares,
          mode,
          streams,
          options.entry,
          progress,
        ),
        early ? early.catch(() => md5File(path)) : md5File(path),
      ]);
      localMd5 = md5;
      serverMd5 ??= results.find((result) => result.md5 !== null)?.md5 ?? undefined;
    }
    // With several connections, the block that completed the upload may have gone to
    // another worker: STATUS asks the server to check and complete it. A resume from a
    // STATUS that listed only the first ranges sends the rest in further rounds.
    for (let round = 0; serverMd5 === undefined; round++) {
      const reply = await connection.call(request("FILE", "STATUS", { token, key }));
      if (reply.json.status === 200 && reply.json.complete === true) {
        serverMd5 = String(reply.json.md5);
        break;
      }
      const missing = reply.json.status === 200 && round < 1000
        ? missingBlocks(reply.json, total)
        : [];
      if (missing.length === 0) {
        throw new Error(
          `The server did not confirm the upload of '${key}' (${reply.json.status} ${reply.json.status_msg})`,
        );
      }
      serverMd5 = await sendBlocks(connection, { ...input, indices: missing, window });
    }
    if (serverMd5 !== localMd5) throw new Md5MismatchError(localMd5, serverMd5, `'${key}'`);
    const moved = { key, path, size, blockSize, blocks: total, blocksSent: indices.length };
    return finished(started, moved, resolved, token, { localMd5, serverMd5 });
  } finally {
    try {
      await connection.bye(token);
    } finally {
      await ahead?.close();
    }
  }
}

/** The size of a local file, or an error that names it: `Cannot read photo.jpg: no such file`. */
export async function localFileSize(path: string): Promise<number> {
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) throw new Error(`Cannot read ${path}: it is a directory`);
    return info.size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`Cannot read ${path}: no such file`);
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Error(`Cannot read ${path}: permission denied`);
    }
    throw error;
  }
}

/** Downloads a key into `path` (via `path.part`, renamed once the MD5 matches). */
export async function download(path: string, options: TransferOptions): Promise<TransferResult> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? 30_000;
  const key = options.key;
  const { connection, token, resolved } = await openSession(options, timeoutMs);
  try {
    const { mode, streams, blockSize: requested } = resolved;
    const fields: StepJson = { token, key };
    if (requested !== DEFAULT_BLOCK_SIZE) fields.block_size = requested;
    const plan = await connection.expect200(request("FILE", "GET", fields));
    const size = planField(plan.json, "size", 0, Number.MAX_SAFE_INTEGER);
    const blockSize = planBlockSize(plan.json);
    if (typeof plan.json.md5 !== "string" || !/^[0-9a-fA-F]{32}$/.test(plan.json.md5)) {
      throw new Error(
        `The download plan carries no valid md5 (got ${JSON.stringify(plan.json.md5)})`,
      );
    }
    const serverMd5 = plan.json.md5.toLowerCase();
    const total = totalBlocks(size, blockSize);
    const partial = `${path}.part`;
    const mapPath = `${partial}.blocks`;
    let received = new Uint8Array(total);
    if (options.resume) {
      try {
        const map = await Deno.readFile(mapPath);
        if ((await Deno.stat(partial)).size === size && map.length === total) received = map;
      } catch {
        // Nothing to resume from.
      }
    }
    if (received.every((b) => b === 0)) {
      await Deno.writeFile(partial, new Uint8Array(0));
      await Deno.writeFile(mapPath, new Uint8Array(total));
      await Deno.truncate(partial, size);
    }
    const indices: number[] = [];
    for (let i = 0; i < total; i++) if (!received[i]) indices.push(i);
    let done = size - indices.reduce((sum, i) => sum + blockLength(size, blockSize, i), 0);
    const progress = (bytes: number) => {
      done += bytes;
      options.onProgress?.(done, size);
    };
    progress(0);
    const input = shareInput(options, resolved, {
      token,
      path: partial,
      size,
      blockSize,
      indices,
    });
    let localMd5: string;
    let writer: TransferResult["writer"] = "buffered";
    if (mode === "sequential" || mode === "async") {
      // Blocks arrive in order here: a large file is hashed by a worker reading the
      // file just behind the writes, a small one in line.
      const whole = indices.length === total;
      // A large whole file is written past the page cache and hashed from memory
      // (direct_writer.ts) where that works here.
      const direct = whole && size >= DIRECT_MIN_BYTES
        ? DirectWriter.open(partial, blockSize)
        : null;
      if (direct) writer = "direct";
      // The worker starts while the first blocks arrive; if it cannot start, the file
      // is hashed at the end instead.
      const follower: Promise<HashFollower | null> | null =
        whole && direct === null && size >= followMinBytes()
          ? startHashFollower(partial, options.entry)
          : null;
      const hasher = whole && follower === null && direct === null ? createMd5() : null;
      try {
        await receiveBlocks(
          connection,
          input,
          (index, data) => {
            hasher?.update(data);
            if (follower) {
              const upTo = Math.min(size, (index + 1) * blockSize);
              follower.then((f) => f?.advance(upTo));
            }
            progress(data.length);
          },
          undefined,
          direct,
        );
        const ready = follower ? await follower : null;
        localMd5 = direct?.hashing
          ? await direct.digest()
          : ready
          ? await ready.finish(size).catch(() => md5File(partial))
          : hasher
          ? hasher.digest()
          : await md5File(partial);
      } finally {
        follower?.then((f) => f?.stop());
        direct?.close();
      }
    } else {
      const shares = splitShares(indices, streams * 4).map((share) => ({
        ...input,
        indices: share,
      }));
      await runShares("transfer.download-share", shares, mode, streams, options.entry, progress);
      localMd5 = await md5File(partial);
    }
    if (localMd5 !== serverMd5) {
      // A damaged copy must not be resumed from: start clean next time.
      await Deno.remove(partial).catch(() => {});
      await Deno.remove(mapPath).catch(() => {});
      throw new Md5MismatchError(localMd5, serverMd5, `'${key}'`);
    }
    await Deno.rename(partial, path);
    await Deno.remove(mapPath).catch(() => {});
    const moved = { key, path, size, blockSize, blocks: total, blocksSent: indices.length };
    return { ...finished(started, moved, resolved, token, { localMd5, serverMd5 }), writer };
  } finally {
    await connection.bye(token);
  }
}

/** Default key for a file: its base name (what the course's client sends). */
export function defaultKey(path: string): string {
  return baseName(path);
}

/** Default output file for a downloaded key: its last part, never a directory name. */
export function defaultOutput(key: string): string {
  const name = baseName(key);
  return name === "" || name === "." || name === ".." ? "download" : name;
}

/** Throws {@linkcode StepStatusError} unless the reply is 200. */
export function expectOk(reply: StepJson, what: string): StepJson {
  if (reply.status !== 200) {
    throw new StepStatusError(what, Number(reply.status), String(reply.status_msg ?? ""));
  }
  return reply;
}

/** Error text for the command line. */
export function describeError(error: unknown): string {
  return errorMessage(error);
}
