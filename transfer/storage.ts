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
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { blockLength, totalBlocks } from "./protocol.ts";
import { Scratch } from "./receiver.ts";

/** A name from the network made safe as one path component. */
export function safeName(name: string): string {
  const digest = createHash("sha256").update(name).digest("hex").slice(0, 16);
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

/** An upload in progress, as one isolate sees it. */
export interface UploadState {
  plan: UploadPlan;
  paths: KeyPaths;
  total: number;
  received: Uint8Array;
  count: number;
  /** Inode of the plan file this state belongs to (a new SAVE makes a new one). */
  planInode: number | null;
  part: Deno.FsFile;
  blocks: Deno.FsFile;
  /** Running MD5 while blocks arrive in order (null once they do not). */
  hasher: Hash | null;
  nextHashIndex: number;
  completing: Promise<CompletionResult> | null;
}

/** Outcome of trying to complete an upload. */
export type CompletionResult =
  | { done: true; md5: string }
  | { done: false; missing: number };

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function inodeOf(path: string): number | null {
  try {
    return Deno.statSync(path).ino ?? null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function writeAllSync(file: Deno.FsFile, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
}

/** Reads up to `length` bytes at `position` (fewer only at the end of the file). */
export function readAtSync(
  file: Deno.FsFile,
  position: number,
  length: number,
  into?: Uint8Array,
): Uint8Array {
  const out = into && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
  file.seekSync(position, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = file.readSync(out.subarray(filled));
    if (n === null || n === 0) break;
    filled += n;
  }
  return filled === length ? out : out.subarray(0, filled);
}

/** MD5 of a whole file, read in 1 MiB pieces. */
export async function md5File(path: string): Promise<string> {
  const hash = createHash("md5");
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(1 << 20);
  for (;;) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/** The storage root and the upload states of this isolate. */
export class Storage {
  readonly #uploads = new Map<string, UploadState>();
  /** Users whose directories exist, and recent key names (hashing each request costs). */
  readonly #users = new Set<string>();
  readonly #names = new Map<string, string>();
  readonly #scratch = new Scratch();

  constructor(readonly root: string) {
    for (const dir of ["data", "file", "tmp"]) {
      Deno.mkdirSync(`${root}/${dir}`, { recursive: true });
    }
  }

  /** Paths of a key, creating the user's directories. */
  paths(user: string, key: string): KeyPaths {
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

  /** The upload state this isolate holds for a key, if any (no file system access). */
  cached(paths: KeyPaths): UploadState | undefined {
    return this.#uploads.get(paths.plan);
  }

  /** True when the key is a finished file. */
  isComplete(paths: KeyPaths): boolean {
    return exists(paths.file);
  }

  /** True when the key has an upload in progress. */
  inProgress(paths: KeyPaths): boolean {
    return exists(paths.plan);
  }

  /**
   * Starts an upload. Returns `false` when another upload of the key holds it
   * (the plan file is created exclusively, which is atomic across processes).
   */
  startUpload(paths: KeyPaths, plan: UploadPlan): boolean {
    let planFile: Deno.FsFile;
    try {
      planFile = Deno.openSync(paths.plan, { write: true, createNew: true });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return false;
      throw error;
    }
    try {
      const total = totalBlocks(plan.size, plan.blockSize);
      const part = Deno.openSync(paths.part, {
        read: true,
        write: true,
        create: true,
        truncate: true,
      });
      part.truncateSync(plan.size);
      const blocks = Deno.openSync(paths.blocks, {
        read: true,
        write: true,
        create: true,
        truncate: true,
      });
      blocks.truncateSync(total);
      writeAllSync(planFile, new TextEncoder().encode(JSON.stringify(plan)));
      const planInode = planFile.statSync().ino ?? null;
      planFile.close();
      this.#uploads.set(paths.plan, {
        plan,
        paths,
        total,
        received: new Uint8Array(total),
        count: 0,
        planInode,
        part,
        blocks,
        hasher: createHash("md5"),
        nextHashIndex: 0,
        completing: null,
      });
      return true;
    } catch (error) {
      try {
        planFile.close();
      } catch {
        // Already closed.
      }
      this.#removeUpload(paths);
      throw error;
    }
  }

  /** The upload state of a key (loaded from disk if this isolate has not seen it), or null. */
  upload(paths: KeyPaths): UploadState | null {
    // A cached state is checked against the plan file's inode (one stat): another
    // process may have completed, deleted or restarted this upload meanwhile.
    const cached = this.#uploads.get(paths.plan);
    if (cached) {
      const inode = inodeOf(paths.plan);
      if (inode !== null && inode === cached.planInode) return cached;
      this.#forget(paths);
      if (inode === null) return null;
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
      blocks = Deno.openSync(paths.blocks, { read: true, write: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    const planInode = inodeOf(paths.plan);
    if (planInode === null) {
      part.close();
      blocks.close();
      return null;
    }
    const received = readAtSync(blocks, 0, total);
    const full = new Uint8Array(total);
    full.set(received);
    const state: UploadState = {
      plan,
      paths,
      total,
      received: full,
      count: full.reduce((sum, b) => sum + (b ? 1 : 0), 0),
      planInode,
      part,
      blocks,
      hasher: null,
      nextHashIndex: -1,
      completing: null,
    };
    this.#uploads.set(paths.plan, state);
    return state;
  }

  /** Writes one block and marks it received. Returns true if it was new. */
  writeBlock(state: UploadState, index: number, data: Uint8Array): boolean {
    // Synchronous seek and write: no other connection of this isolate can run in between.
    state.part.seekSync(index * state.plan.blockSize, Deno.SeekMode.Start);
    writeAllSync(state.part, data);
    state.blocks.seekSync(index, Deno.SeekMode.Start);
    writeAllSync(state.blocks, new Uint8Array([1]));
    const fresh = !state.received[index];
    if (fresh) {
      state.received[index] = 1;
      state.count++;
    }
    if (state.hasher !== null) {
      // A block rewritten behind the hashed prefix may have changed: hash at the end instead.
      if (index < state.nextHashIndex) state.hasher = null;
      else this.#advanceHash(state, index, data);
    }
    return fresh;
  }

  /**
   * Hashes the received prefix as far as it reaches, reading back blocks that came
   * early (from several connections). The whole-file MD5 is then ready when the
   * last block lands, instead of costing a full re-read at completion.
   */
  #advanceHash(state: UploadState, index: number, data: Uint8Array): void {
    const hasher = state.hasher!;
    while (state.nextHashIndex < state.total && state.received[state.nextHashIndex]) {
      const next = state.nextHashIndex;
      if (next === index) hasher.update(data);
      else {
        const length = blockLength(state.plan.size, state.plan.blockSize, next);
        hasher.update(
          readAtSync(state.part, next * state.plan.blockSize, length, this.#scratch.take(length)),
        );
      }
      state.nextHashIndex++;
    }
  }

  /** Re-reads the received map from disk (other processes may have written blocks). */
  refresh(state: UploadState): void {
    const onDisk = readAtSync(state.blocks, 0, state.total);
    let count = 0;
    for (let i = 0; i < state.total; i++) {
      if (onDisk[i] || state.received[i]) {
        state.received[i] = 1;
        count++;
      }
    }
    state.count = count;
  }

  /** Indices of the blocks not yet received. */
  missing(state: UploadState): number[] {
    const out: number[] = [];
    for (let i = 0; i < state.total; i++) if (!state.received[i]) out.push(i);
    return out;
  }

  /**
   * Completes the upload if every block is in: verify under an exclusive lock,
   * hash, then rename. Safe when several connections (or processes) finish together.
   */
  complete(state: UploadState): Promise<CompletionResult> {
    state.completing ??= this.#complete(state).finally(() => {
      state.completing = null;
    });
    return state.completing;
  }

  async #complete(state: UploadState): Promise<CompletionResult> {
    const { paths } = state;
    await state.blocks.lock(true);
    try {
      if (exists(paths.file)) return { done: true, md5: await this.md5Of(paths) };
      if (!exists(paths.plan)) return { done: false, missing: state.total };
      this.refresh(state);
      if (state.count < state.total) return { done: false, missing: state.total - state.count };
      const md5 = state.hasher !== null && state.nextHashIndex === state.total
        ? state.hasher.digest("hex")
        : await md5File(paths.part);
      state.hasher = null;
      Deno.writeTextFileSync(`${paths.md5}.tmp`, md5);
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
  async md5Of(paths: KeyPaths): Promise<string> {
    try {
      return Deno.readTextFileSync(paths.md5).trim();
    } catch {
      const md5 = await md5File(paths.file);
      Deno.writeTextFileSync(paths.md5, md5);
      return md5;
    }
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
  }

  #forget(paths: KeyPaths): void {
    const state = this.#uploads.get(paths.plan);
    if (!state) return;
    this.#uploads.delete(paths.plan);
    for (const file of [state.part, state.blocks]) {
      try {
        file.close();
      } catch {
        // Already closed.
      }
    }
  }

  /** Closes every open upload file (the uploads stay on disk for a later resume). */
  close(): void {
    for (const state of this.#uploads.values()) {
      for (const file of [state.part, state.blocks]) {
        try {
          file.close();
        } catch {
          // Already closed.
        }
      }
    }
    this.#uploads.clear();
  }

  /** Length the block at `index` must have. */
  static blockLength(state: UploadState, index: number): number {
    return blockLength(state.plan.size, state.plan.blockSize, index);
  }
}
