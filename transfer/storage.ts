/**
 * Server-side storage for `transfer serve`: where DATA values, finished files and
 * uploads in progress live under the root, and the upload state machine.
 *
 * Names from the network never become paths: a key or username is stored under
 * `<16 hex of its SHA-256>-<safe characters>`, so `../x`, `/etc` or `a/b` stay
 * inside the root. An upload in progress is three files in `tmp/<user>/`:
 * `<name>.plan` (key, size, block size; created exclusively, so one SAVE wins),
 * `<name>.part` (the data) and `<name>.blocks` (one byte per block, set when the
 * block is written: a constant cost per block, and what STATUS and a restarted
 * server read back). Completion takes an exclusive lock on `.blocks`, re-reads
 * it, hashes, writes `<name>.md5`, then renames `.part` into `file/<user>/`.
 *
 * Bounds (a hostile client can start plans for any user name): a plan's files are
 * open only while a connection writes to it (an {@linkcode UploadSession} holds a
 * few and lets them go when idle or closed); memory per open plan is constant
 * (the block map stays on disk and is scanned in pieces); plans in progress are
 * capped per user and in total; abandoned ones expire.
 *
 * Over 500 lines because the `Storage` class is one state machine (plan, blocks,
 * running hash, completion under a lock, expiry) whose steps share its private
 * state; the connection side is upload_session.ts and the file helpers are
 * storage_files.ts.
 *
 * @module
 */
import { createMd5, type Md5, nodeCrypto } from "./md5.ts";
import { blockLength, totalBlocks } from "./protocol.ts";
import { Scratch } from "./receiver.ts";
import { type BlockMapScan, scanBlockMap } from "./block_map.ts";
import { Flusher } from "./flusher.ts";
import { DIRECT_MIN_BYTES, DirectWriter } from "./direct_writer.ts";
import {
  closeQuietly,
  exists,
  inodeOf,
  md5File,
  readAtSync,
  writeAllSync,
} from "./storage_files.ts";

export { md5File, readAtSync } from "./storage_files.ts";
export { UploadSession } from "./upload_session.ts";
import { followMinBytes, type HashFollower, startHashFollower } from "./hash_follow.ts";

/** A name from the network made safe as one path component. */
export function safeName(name: string): string {
  const digest = nodeCrypto().createHash("sha256").update(name).digest("hex").slice(0, 16);
  const readable = name.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 48);
  return `${digest}-${readable}`;
}

/** Where one key of one user lives. */
export interface KeyPaths {
  data: string;
  file: string;
  md5: string;
  plan: string;
  part: string;
  blocks: string;
}

/** The persisted upload plan. */
export interface UploadPlan {
  key: string;
  size: number;
  blockSize: number;
}

/** An upload in progress with its files open, shared by the connections of one isolate. */
export interface UploadState {
  plan: UploadPlan;
  paths: KeyPaths;
  total: number;
  /** Blocks received as far as this isolate knows (other processes may add more). */
  count: number;
  /** Inode of the plan file this state belongs to (a new SAVE makes a new one). */
  planInode: number | null;
  /** When the plan's inode was last confirmed (`performance.now()`). */
  checkedAt: number;
  part: Deno.FsFile;
  blocks: Deno.FsFile;
  /**
   * How the MD5 is computed while blocks arrive in order: in line (`hasher`, small
   * files) or by a worker reading the file back behind the writes (`follower`,
   * large ones); both null once blocks stop arriving in order (hashed at the end).
   */
  hasher: Md5 | null;
  follower: Promise<HashFollower | null> | null;
  /** Blocks from the start of the file known written (the hashed prefix). */
  nextHashIndex: number;
  /** Keeps the disk writing while blocks arrive (flusher.ts). */
  flusher: Flusher;
  /**
   * Writes and hashes large fresh uploads past the page cache (direct_writer.ts),
   * or null (buffered writes). A block's map byte is set once its bytes are written.
   */
  direct: DirectWriter | null;
  /** Blocks received ahead of the hashed prefix by this isolate (bounded). */
  early: Set<number>;
  completing: Promise<CompletionResult> | null;
  /** Sessions holding it; its files close when this drops to 0. */
  refs: number;
  /**
   * Blocks this isolate has written, one bit each, for plans of at most
   * {@linkcode SMALL_PLAN_BLOCKS} blocks (saves reading the map per block); null
   * for larger plans, whose map byte is read instead.
   */
  seen: Uint8Array | null;
  /** Where the files' positions are (-1: unknown): in-order blocks need no seek. */
  partPos: number;
  mapPos: number;
  /** True once its files are closed (deleted, completed, expired or released). */
  closed: boolean;
}

/** Outcome of trying to complete an upload. */
export type CompletionResult =
  | { done: true; md5: string }
  | { done: false; missing: number };

/** One key in a LIST reply. */
export interface ListedFile {
  key: string;
  size: number;
  /** MD5 of a finished file; null while in progress. */
  md5: string | null;
  complete: boolean;
}

/** Limits on uploads in progress. */
export interface PlanLimits {
  /** Plans in progress one user may have. */
  maxPlansPerUser: number;
  /** Plans in progress in the whole root. */
  maxPlans: number;
  /** Seconds without a block after which a plan is removed (0: never). */
  planTtlSeconds: number;
}

/** Defaults: 100 plans per user, 10,000 in all, expiry after a day without a block. */
export const DEFAULT_PLAN_LIMITS: PlanLimits = {
  maxPlansPerUser: 100,
  maxPlans: 10_000,
  planTtlSeconds: 86_400,
};

/** Why a SAVE could not start a plan. */
export type StartRefusal = "exists" | "user-cap" | "total-cap";

/** Milliseconds an upload's plan is trusted to be the one on disk without a stat. */
export const RECHECK_PLAN_MS = 20;

/** Plans up to this many blocks keep a bitset of written blocks in memory (16 KiB at most). */
export const SMALL_PLAN_BLOCKS = 1 << 17;

/** Most blocks received out of order that the running hash remembers before giving up. */
const MAX_EARLY_BLOCKS = 4096;
const ONE = new Uint8Array([1]);

/** The storage root and the open uploads of this isolate. */
export class Storage {
  readonly #open = new Map<string, UploadState>();
  /** Users whose directories exist, and recent key names (hashing each request costs). */
  readonly #users = new Set<string>();
  readonly #names = new Map<string, string>();
  readonly #scratch = new Scratch();
  readonly #byte = new Uint8Array(1);
  readonly limits: PlanLimits;
  #totalPlans: { count: number; at: number } | null = null;
  #lastSweep = 0;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;

  /** Module that registers the hash worker's service (default: the main module). */
  entry: string | undefined;

  constructor(readonly root: string, limits: Partial<PlanLimits> = {}, entry?: string) {
    this.entry = entry;
    this.limits = { ...DEFAULT_PLAN_LIMITS, ...limits };
    for (const dir of ["data", "file", "tmp"]) {
      Deno.mkdirSync(`${root}/${dir}`, { recursive: true });
    }
    if (this.limits.planTtlSeconds > 0) {
      // Abandoned plans go even when no one SAVEs; the timer never keeps the process alive.
      const every = Math.min(60_000, Math.max(1000, this.limits.planTtlSeconds * 250));
      const timer = setInterval(() => this.sweepExpired(), every);
      Deno.unrefTimer(timer);
      this.#sweepTimer = timer;
    }
  }

  /** Paths of a key, creating the user's directories. */
  paths(user: string, key: string): KeyPaths {
    // Every block of an upload asks for the same key's paths: the last ones are kept
    // (six new strings and two name lookups per request otherwise).
    const last = this.#lastPaths;
    if (last !== null && last.user === user && last.key === key) return last.paths;
    const paths = this.#pathsOf(user, key);
    this.#lastPaths = { user, key, paths };
    return paths;
  }

  #lastPaths: { user: string; key: string; paths: KeyPaths } | null = null;

  #pathsOf(user: string, key: string): KeyPaths {
    const u = this.#name(user);
    const k = this.#name(key);
    if (!this.#users.has(u)) {
      for (const dir of ["data", "file", "tmp"]) {
        Deno.mkdirSync(`${this.root}/${dir}/${u}`, { recursive: true });
      }
      this.#users.add(u);
    }
    const tmp = `${this.root}/tmp/${u}/${k}`;
    return {
      data: `${this.root}/data/${u}/${k}.json`,
      file: `${this.root}/file/${u}/${k}`,
      md5: `${this.root}/file/${u}/${k}.md5`,
      plan: `${tmp}.plan`,
      part: `${tmp}.part`,
      blocks: `${tmp}.blocks`,
    };
  }

  #name(name: string): string {
    let safe = this.#names.get(name);
    if (safe === undefined) {
      if (this.#names.size > 10_000) this.#names.clear();
      safe = safeName(name);
      this.#names.set(name, safe);
    }
    return safe;
  }

  /** Number of upload states with open files in this isolate. */
  get openUploads(): number {
    return this.#open.size;
  }

  /** True when the key is a finished file. */
  isComplete(paths: KeyPaths): boolean {
    return exists(paths.file);
  }

  /** True when the key has an upload in progress. */
  inProgress(paths: KeyPaths): boolean {
    return exists(paths.plan);
  }

  /** Plans in progress of the user whose `tmp/` directory holds `paths.plan`. */
  #userPlans(paths: KeyPaths): number {
    const dir = paths.plan.slice(0, paths.plan.lastIndexOf("/"));
    let count = 0;
    for (const entry of Deno.readDirSync(dir)) if (entry.name.endsWith(".plan")) count++;
    return count;
  }

  /** Plans in progress in the root, counted at most every 2 s (plus this isolate's since). */
  #allPlans(): number {
    const now = Date.now();
    if (this.#totalPlans === null || now - this.#totalPlans.at > 2000) {
      let count = 0;
      for (const user of Deno.readDirSync(`${this.root}/tmp`)) {
        if (!user.isDirectory) continue;
        for (const entry of Deno.readDirSync(`${this.root}/tmp/${user.name}`)) {
          if (entry.name.endsWith(".plan")) count++;
        }
      }
      this.#totalPlans = { count, at: now };
    }
    return this.#totalPlans.count;
  }

  /**
   * Starts an upload: creates its three files and closes them (they open again when
   * a connection writes). Returns why not when the key is taken (the plan file is
   * created exclusively, which is atomic across processes) or a cap is reached.
   */
  startUpload(paths: KeyPaths, plan: UploadPlan): StartRefusal | null {
    this.sweepExpired(false);
    if (exists(paths.plan)) return "exists";
    if (this.#userPlans(paths) >= this.limits.maxPlansPerUser) return "user-cap";
    if (this.#allPlans() >= this.limits.maxPlans) return "total-cap";
    let planFile: Deno.FsFile;
    try {
      planFile = Deno.openSync(paths.plan, { write: true, createNew: true });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return "exists";
      throw error;
    }
    try {
      const total = totalBlocks(plan.size, plan.blockSize);
      {
        using part = Deno.openSync(paths.part, { write: true, create: true, truncate: true });
        part.truncateSync(plan.size);
      }
      {
        using blocks = Deno.openSync(paths.blocks, { write: true, create: true, truncate: true });
        blocks.truncateSync(total);
      }
      writeAllSync(planFile, new TextEncoder().encode(JSON.stringify(plan)));
      if (this.#totalPlans) this.#totalPlans.count++;
      return null;
    } catch (error) {
      this.#removeUpload(paths);
      throw error;
    } finally {
      closeQuietly(planFile);
    }
  }

  /**
   * True while `state` still belongs to the plan on disk: one stat, at most every
   * {@linkcode RECHECK_PLAN_MS} (a plan replaced by another process is noticed
   * that late; one stat per 20 KiB block cost a tenth of the server's time).
   */
  current(state: UploadState): boolean {
    if (state.closed) return false;
    const now = performance.now();
    if (now - state.checkedAt < RECHECK_PLAN_MS) return true;
    if (inodeOf(state.paths.plan) !== state.planInode) return false;
    state.checkedAt = now;
    return true;
  }

  /**
   * Opens (or shares) the upload state of a key and counts a reference to it;
   * null when there is no upload in progress. Pair with {@linkcode release}.
   */
  acquire(paths: KeyPaths): UploadState | null {
    const cached = this.#open.get(paths.plan);
    if (cached) {
      if (this.current(cached)) {
        cached.refs++;
        return cached;
      }
      this.#forget(paths);
    }
    let plan: UploadPlan;
    try {
      plan = JSON.parse(Deno.readTextFileSync(paths.plan));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    const total = totalBlocks(plan.size, plan.blockSize);
    let part: Deno.FsFile;
    let blocks: Deno.FsFile;
    try {
      part = Deno.openSync(paths.part, { read: true, write: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    try {
      blocks = Deno.openSync(paths.blocks, { read: true, write: true });
    } catch (error) {
      closeQuietly(part);
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    const planInode = inodeOf(paths.plan);
    if (planInode === null) {
      closeQuietly(part);
      closeQuietly(blocks);
      return null;
    }
    const { received } = scanBlockMap(blocks, total, 0);
    const fresh = received === 0;
    let seen: Uint8Array | null = null;
    if (total <= SMALL_PLAN_BLOCKS) {
      seen = new Uint8Array(Math.ceil(total / 8));
      if (!fresh) {
        const map = readAtSync(blocks, 0, total);
        for (let i = 0; i < map.length; i++) if (map[i]) seen[i >> 3] |= 1 << (i & 7);
      }
    }
    // A fresh large plan is written past the page cache and hashed from memory (the
    // map of written blocks is then kept in `seen` before the bytes reach the file).
    const direct = fresh && seen !== null && plan.size >= DIRECT_MIN_BYTES
      ? DirectWriter.open(paths.part, plan.blockSize)
      : null;
    const follow = fresh && direct === null && plan.size >= followMinBytes();
    const state: UploadState = {
      plan,
      paths,
      total,
      count: received,
      planInode,
      checkedAt: performance.now(),
      part,
      blocks,
      // A plan no block has reached yet can be hashed as its blocks arrive.
      hasher: fresh && !follow && direct === null ? createMd5() : null,
      follower: follow ? startHashFollower(paths.part, this.entry) : null,
      nextHashIndex: fresh ? 0 : -1,
      flusher: new Flusher(paths.part, part),
      direct,
      early: new Set(),
      completing: null,
      refs: 1,
      closed: false,
      seen,
      partPos: -1,
      mapPos: -1,
    };
    this.#open.set(paths.plan, state);
    return state;
  }

  /** Drops one reference; the files close with the last. */
  release(state: UploadState): void {
    if (state.closed) return;
    state.refs--;
    if (state.refs <= 0 && state.completing === null) this.#forget(state.paths);
  }

  #received(state: UploadState, index: number): boolean {
    return readAtSync(state.blocks, index, 1, this.#byte)[0] === 1;
  }

  /** Writes one block and marks it received. Returns true if it was new. */
  writeBlock(state: UploadState, index: number, data: Uint8Array): boolean {
    // Synchronous seeks and writes: no other connection of this isolate can run in
    // between. In-order blocks find both files already positioned (no seek).
    let fresh: boolean;
    if (state.seen) {
      const bit = 1 << (index & 7);
      fresh = (state.seen[index >> 3] & bit) === 0;
      state.seen[index >> 3] |= bit;
    } else {
      fresh = !this.#received(state, index);
      state.mapPos = index + 1;
    }
    const offset = index * state.plan.blockSize;
    if (state.direct) {
      this.#writeDirect(state, state.direct, index, data);
      if (fresh) state.count++;
      return fresh;
    }
    if (state.partPos !== offset) state.part.seekSync(offset, Deno.SeekMode.Start);
    state.partPos = -1;
    writeAllSync(state.part, data);
    state.partPos = offset + data.length;
    if (state.mapPos !== index) state.blocks.seekSync(index, Deno.SeekMode.Start);
    state.mapPos = -1;
    writeAllSync(state.blocks, ONE);
    state.mapPos = index + 1;
    if (fresh) state.count++;
    if (state.hasher !== null || state.follower !== null) {
      // A block rewritten behind the hashed prefix may have changed: hash at the end instead.
      if (index < state.nextHashIndex) this.#stopHashing(state);
      else this.#advanceHash(state, index, data);
    }
    state.flusher.wrote(data.length);
    return fresh;
  }

  /**
   * Resolves when {@linkcode writeBlock} can take a block without allocating
   * (back-pressure); null when it can at once. `data` is the block, perhaps read
   * into a buffer the direct writer lent (see step_handler.ts).
   */
  room(state: UploadState, data?: Uint8Array): Promise<void> | null {
    return state.direct?.room(data) ?? null;
  }

  /**
   * The direct path of {@linkcode writeBlock}: the block is copied and written on
   * another thread, its map byte set once it is in the file (so another process
   * never sees a block marked before its bytes are there); an in-order block is
   * hashed from the same copy.
   */
  #writeDirect(state: UploadState, direct: DirectWriter, index: number, data: Uint8Array): void {
    const inOrder = direct.hashing && index === state.nextHashIndex;
    if (inOrder) state.nextHashIndex++;
    else if (direct.hashing) this.#stopHashing(state);
    direct.write(index * state.plan.blockSize, data, inOrder, () => {
      if (state.closed) return;
      if (state.mapPos !== index) state.blocks.seekSync(index, Deno.SeekMode.Start);
      state.mapPos = -1;
      writeAllSync(state.blocks, ONE);
      state.mapPos = index + 1;
    });
  }

  /**
   * Hashes the received prefix as far as it reaches, reading back blocks that came
   * early (from several connections). The whole-file MD5 is then ready when the
   * last block lands, instead of costing a full re-read at completion.
   */
  #advanceHash(state: UploadState, index: number, data: Uint8Array): void {
    if (index !== state.nextHashIndex) {
      if (state.early.size >= MAX_EARLY_BLOCKS) this.#stopHashing(state);
      else state.early.add(index);
      return;
    }
    const hasher = state.hasher;
    hasher?.update(data);
    state.nextHashIndex++;
    while (state.early.delete(state.nextHashIndex)) {
      const next = state.nextHashIndex;
      if (hasher) {
        state.partPos = -1;
        const length = blockLength(state.plan.size, state.plan.blockSize, next);
        hasher.update(
          readAtSync(state.part, next * state.plan.blockSize, length, this.#scratch.take(length)),
        );
      }
      state.nextHashIndex++;
    }
    if (state.follower) {
      const upTo = Math.min(state.plan.size, state.nextHashIndex * state.plan.blockSize);
      state.follower.then((follower) => follower?.advance(upTo));
    }
  }

  #stopHashing(state: UploadState): void {
    state.direct?.stopHashing();
    state.nextHashIndex = state.direct ? -1 : state.nextHashIndex;
    state.hasher = null;
    state.follower?.then((follower) => follower?.stop());
    state.follower = null;
    state.early.clear();
  }

  /** The MD5 from the running hash if it covered every block, else by reading the file. */
  async #digest(state: UploadState): Promise<string> {
    const inOrder = state.nextHashIndex === state.total;
    if (state.hasher !== null && inOrder) return state.hasher.digest();
    if (state.direct?.hashing && inOrder) {
      try {
        return await state.direct.digest();
      } catch {
        // A hash call failed (a failed write already failed the drain): read the file.
      }
    }
    if (state.follower !== null && inOrder) {
      const follower = await state.follower;
      if (follower) {
        try {
          return await follower.finish(state.plan.size);
        } catch {
          // The worker failed: read the file instead.
        }
      }
    }
    this.#stopHashing(state);
    return await md5File(state.paths.part);
  }

  /** Re-counts the received blocks from disk (other processes may have written some). */
  refresh(state: UploadState): void {
    state.count = this.scan(state, 0).received;
  }

  /** Scans the plan's block map on disk (see block_map.ts). */
  scan(state: UploadState, maxRanges: number): BlockMapScan {
    state.mapPos = -1;
    return scanBlockMap(state.blocks, state.total, maxRanges);
  }

  /**
   * Completes the upload if every block is in: verify under an exclusive lock,
   * hash, then rename. Safe when several connections (or processes) finish together.
   */
  complete(state: UploadState): Promise<CompletionResult> {
    state.completing ??= this.#complete(state).finally(() => {
      state.completing = null;
      if (state.refs <= 0) this.#forget(state.paths);
    });
    return state.completing;
  }

  async #complete(state: UploadState): Promise<CompletionResult> {
    const { paths } = state;
    await state.blocks.lock(true);
    try {
      if (exists(paths.file)) return { done: true, md5: await this.md5Of(paths) };
      if (!exists(paths.plan)) return { done: false, missing: state.total };
      // Blocks still being written directly are in the map once they are in the file.
      await state.direct?.drain();
      this.refresh(state);
      if (state.count < state.total) return { done: false, missing: state.total - state.count };
      // Stored durably before the name appears: a crash never leaves a file that lies.
      // The last hash and the final sync overlap.
      const synced = state.flusher.settle().then(() => state.part.sync());
      synced.catch(() => {});
      const md5 = await this.#digest(state);
      state.hasher = null;
      state.follower = null;
      await synced;
      // The key rides along (names on disk are hashed): LIST reads it back.
      Deno.writeTextFileSync(`${paths.md5}.tmp`, `${md5}\n${JSON.stringify(state.plan.key)}\n`);
      Deno.renameSync(`${paths.md5}.tmp`, paths.md5);
      Deno.renameSync(paths.part, paths.file);
      this.#removeUpload(paths);
      return { done: true, md5 };
    } finally {
      try {
        await state.blocks.unlock();
      } catch {
        // Closed by the removal.
      }
      if (exists(paths.file)) this.#forget(paths);
    }
  }

  /** The stored MD5 of a finished file (computed and stored if missing). */
  async md5Of(paths: KeyPaths, key?: string): Promise<string> {
    try {
      return Deno.readTextFileSync(paths.md5).split("\n")[0].trim();
    } catch {
      const md5 = await md5File(paths.file);
      Deno.writeTextFileSync(
        paths.md5,
        key === undefined ? md5 : `${md5}\n${JSON.stringify(key)}\n`,
      );
      return md5;
    }
  }

  /**
   * A user's keys starting with `prefix`, finished and in progress, sorted, at
   * most `max` of them (`truncated` when there were more).
   */
  list(user: string, prefix: string, max: number): { files: ListedFile[]; truncated: boolean } {
    const u = this.#name(user);
    const files: ListedFile[] = [];
    let truncated = false;
    const add = (file: ListedFile) => {
      if (!file.key.startsWith(prefix)) return;
      if (files.length < max) files.push(file);
      else truncated = true;
    };
    const entries = (dir: string) => {
      try {
        return [...Deno.readDirSync(dir)];
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return [];
        throw error;
      }
    };
    const fileDir = `${this.root}/file/${u}`;
    for (const entry of entries(fileDir)) {
      if (!entry.name.endsWith(".md5")) continue;
      try {
        const [md5, keyLine] = Deno.readTextFileSync(`${fileDir}/${entry.name}`).split("\n");
        if (!keyLine) continue;
        const size = Deno.statSync(`${fileDir}/${entry.name.slice(0, -4)}`).size;
        add({ key: JSON.parse(keyLine), size, md5: md5.trim(), complete: true });
      } catch {
        // Deleted meanwhile, or written before keys were recorded.
      }
    }
    const tmpDir = `${this.root}/tmp/${u}`;
    for (const entry of entries(tmpDir)) {
      if (!entry.name.endsWith(".plan")) continue;
      try {
        const plan = JSON.parse(Deno.readTextFileSync(`${tmpDir}/${entry.name}`)) as UploadPlan;
        add({ key: plan.key, size: plan.size, md5: null, complete: false });
      } catch {
        // Removed meanwhile.
      }
    }
    files.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { files, truncated };
  }

  /** Removes an upload in progress (plan, data and block map). */
  removeUpload(paths: KeyPaths): void {
    this.#removeUpload(paths);
    this.#forget(paths);
  }

  #removeUpload(paths: KeyPaths): void {
    for (const path of [paths.blocks, paths.part, paths.plan]) {
      try {
        Deno.removeSync(path);
      } catch {
        // Already gone.
      }
    }
    if (this.#totalPlans) this.#totalPlans.count = Math.max(0, this.#totalPlans.count - 1);
  }

  #forget(paths: KeyPaths): void {
    const state = this.#open.get(paths.plan);
    if (!state) return;
    this.#open.delete(paths.plan);
    state.closed = true;
    this.#stopHashing(state);
    state.direct?.close();
    state.flusher.close();
    closeQuietly(state.part);
    closeQuietly(state.blocks);
  }

  /**
   * Removes plans that received no block for `planTtlSeconds` (the block map's
   * modification time is the last block's). Runs at most once a second unless forced.
   * Returns how many it removed.
   */
  sweepExpired(force = true): number {
    const ttl = this.limits.planTtlSeconds;
    if (ttl <= 0) return 0;
    const now = Date.now();
    if (!force && now - this.#lastSweep < Math.min(60_000, ttl * 250)) return 0;
    this.#lastSweep = now;
    let removed = 0;
    try {
      for (const user of Deno.readDirSync(`${this.root}/tmp`)) {
        if (!user.isDirectory) continue;
        const dir = `${this.root}/tmp/${user.name}`;
        for (const entry of Deno.readDirSync(dir)) {
          if (!entry.name.endsWith(".plan")) continue;
          const base = `${dir}/${entry.name.slice(0, -".plan".length)}`;
          const paths = { plan: `${base}.plan`, part: `${base}.part`, blocks: `${base}.blocks` };
          let last = 0;
          for (const path of [paths.plan, paths.blocks]) {
            try {
              last = Math.max(last, Deno.statSync(path).mtime?.getTime() ?? 0);
            } catch {
              // Gone meanwhile.
            }
          }
          if (now - last <= ttl * 1000) continue;
          this.removeUpload(paths as KeyPaths);
          removed++;
        }
      }
    } catch (error) {
      // The root vanished (tests remove it): nothing left to sweep.
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return removed;
  }

  /** Closes every open upload file (the uploads stay on disk for a later resume). */
  close(): void {
    clearInterval(this.#sweepTimer);
    for (const state of [...this.#open.values()]) this.#forget(state.paths);
  }

  /** Length the block at `index` must have. */
  static blockLength(state: UploadState, index: number): number {
    return blockLength(state.plan.size, state.plan.blockSize, index);
  }
}
