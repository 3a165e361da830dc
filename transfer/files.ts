/**
 * More than one file: `upload PATH...` (files and directories, recursively; the
 * keys are the paths relative to each directory, with an optional prefix),
 * `download KEY... | --all` into a directory, and `list [PREFIX]` (the `LIST`
 * extension). A file whose key the server already holds with the same MD5 is
 * skipped (as rsync's `--checksum`); a different one needs `force`. One
 * progress callback covers the whole set. Returns one row per file; never prints.
 *
 * @module
 */
import { errorMessage } from "../shared/errors.ts";
import {
  type ConnectOptions,
  download,
  localFileSize,
  simpleRequest,
  StepStatusError,
  type TransferOptions,
  type TransferResult,
  upload,
} from "./client.ts";
import { md5File } from "./storage.ts";

/** A key the server holds (a `LIST` row). */
export interface RemoteFile {
  key: string;
  size: number;
  md5: string | null;
  complete: boolean;
}

/** What happened to one file of a set. */
export interface FileRow {
  key: string;
  path: string;
  size: number;
  status: "uploaded" | "downloaded" | "skipped" | "failed";
  /** Why it was skipped or failed, in words that say what to do. */
  reason?: string;
  md5?: string;
  elapsedMs?: number;
  plan?: string;
  /** The transfer's own result, when it ran. */
  result?: TransferResult;
}

/** The outcome of a set. */
export interface SetResult {
  files: FileRow[];
  done: number;
  skipped: number;
  failed: number;
  bytes: number;
  elapsedMs: number;
}

/** Options for a set: a transfer's options without the key, plus the set's own. */
export interface SetOptions extends Omit<TransferOptions, "key" | "onProgress"> {
  /** Prepended to every key (upload) or required of every key (`--all`). */
  prefix?: string;
  /** Replace a different stored file or local file, or restart an unfinished upload. */
  force?: boolean;
  /** Bytes done of bytes total, files done of files total, for the whole set. */
  onProgress?: (done: number, total: number, filesDone: number, files: number) => void;
}

/** A local file to upload and its key. */
export interface UploadEntry {
  path: string;
  key: string;
  size: number;
}

function join(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/").replace(/\/+/g, "/");
}

function walk(dir: string, relative: string, out: { path: string; rel: string }[]): void {
  const entries = [...Deno.readDirSync(dir)].sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const entry of entries) {
    const path = `${dir}/${entry.name}`;
    const rel = relative === "" ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory) walk(path, rel, out);
    else if (entry.isFile) out.push({ path, rel });
  }
}

/**
 * The files named by `paths`: a file is stored under its base name, a directory's
 * files under their paths relative to it; `prefix` goes in front of each key.
 *
 * @throws `Cannot read photo.jpg: no such file` for a path that does not exist.
 */
export function collectUploads(paths: string[], prefix = ""): UploadEntry[] {
  const out: UploadEntry[] = [];
  const seen = new Map<string, string>();
  for (const given of paths) {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(given);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot read ${given}: no such file`);
      }
      throw new Error(`Cannot read ${given}: ${errorMessage(error)}`);
    }
    const found: { path: string; rel: string }[] = [];
    if (info.isDirectory) walk(given.replace(/\/+$/, ""), "", found);
    else found.push({ path: given, rel: given.replace(/\/+$/, "").split("/").pop() ?? given });
    for (const { path, rel } of found) {
      const key = join(prefix, rel);
      const earlier = seen.get(key);
      if (earlier !== undefined && earlier !== path) {
        throw new Error(`Both ${earlier} and ${path} would be stored as '${key}': use --prefix`);
      }
      if (earlier !== undefined) continue;
      seen.set(key, path);
      out.push({ path, key, size: Deno.statSync(path).size });
    }
  }
  return out;
}

/** The server's keys under `prefix` (the `LIST` extension), or null if it has no LIST. */
export async function listRemote(
  options: ConnectOptions,
  prefix = "",
): Promise<{ files: RemoteFile[]; truncated: boolean } | null> {
  const { reply } = await simpleRequest(options, "FILE", "LIST", { prefix });
  if (reply.status === 408 || reply.status === 400) return null;
  if (reply.status !== 200 || !Array.isArray(reply.files)) {
    throw new StepStatusError("FILE LIST", Number(reply.status), String(reply.status_msg ?? ""));
  }
  const files = (reply.files as unknown[]).filter((f): f is RemoteFile =>
    typeof f === "object" && f !== null && typeof (f as RemoteFile).key === "string" &&
    typeof (f as RemoteFile).size === "number"
  );
  return { files, truncated: reply.truncated === true };
}

/** Says what to do about a failure, for the errors a user can act on. */
export function adviseError(error: unknown, key: string): string {
  if (error instanceof StepStatusError && error.operation === "FILE SAVE" && error.status === 402) {
    return error.statusMsg.includes("being uploaded")
      ? `'${key}' has an unfinished upload: use --resume to finish it or --force to start again`
      : `'${key}' is already stored: use --force to overwrite it`;
  }
  return errorMessage(error);
}

function progressOf(options: SetOptions, total: number, files: number) {
  let base = 0;
  let filesDone = 0;
  return {
    file: (done: number) => options.onProgress?.(base + done, total, filesDone, files),
    finish: (size: number) => {
      base += size;
      filesDone++;
      options.onProgress?.(base, total, filesDone, files);
    },
  };
}

async function deleteKey(options: SetOptions, key: string): Promise<void> {
  await simpleRequest(options, "FILE", "DELETE", { key });
}

/** Uploads a set of files; a failed file does not stop the others. */
export async function uploadMany(entries: UploadEntry[], options: SetOptions): Promise<SetResult> {
  const started = performance.now();
  const remote = new Map<string, RemoteFile>();
  if (entries.length > 0) {
    const listed = await listRemote(options, options.prefix ?? "");
    for (const file of listed?.files ?? []) remote.set(file.key, file);
  }
  const total = entries.reduce((sum, e) => sum + e.size, 0);
  const progress = progressOf(options, total, entries.length);
  const rows: FileRow[] = [];
  for (const entry of entries) {
    const row: FileRow = { key: entry.key, path: entry.path, size: entry.size, status: "failed" };
    rows.push(row);
    try {
      const size = await localFileSize(entry.path);
      row.size = size;
      const held = remote.get(entry.key);
      if (held?.complete) {
        const md5 = held.size === size ? await md5File(entry.path) : null;
        if (md5 !== null && md5 === held.md5) {
          row.status = "skipped";
          row.reason = "unchanged (same MD5 on the server)";
          row.md5 = md5;
          continue;
        }
        if (!options.force) {
          row.reason = `'${entry.key}' is already stored with other content: ` +
            `use --force to overwrite it`;
          continue;
        }
        await deleteKey(options, entry.key);
      } else if (held && !options.resume) {
        if (!options.force) {
          row.reason = `'${entry.key}' has an unfinished upload: ` +
            `use --resume to finish it or --force to start again`;
          continue;
        }
        await deleteKey(options, entry.key);
      }
      const result: TransferResult = await upload(entry.path, {
        ...options,
        key: entry.key,
        onProgress: (done) => progress.file(done),
      });
      row.status = "uploaded";
      row.result = result;
      row.md5 = result.serverMd5;
      row.elapsedMs = Math.round(result.elapsedMs);
      row.plan = result.plan;
    } catch (error) {
      row.reason = adviseError(error, entry.key);
    } finally {
      progress.finish(row.size);
    }
  }
  return summarize(rows, "uploaded", started);
}

function summarize(rows: FileRow[], doneStatus: FileRow["status"], started: number): SetResult {
  return {
    files: rows,
    done: rows.filter((r) => r.status === doneStatus).length,
    skipped: rows.filter((r) => r.status === "skipped").length,
    failed: rows.filter((r) => r.status === "failed").length,
    bytes: rows.filter((r) => r.status === doneStatus).reduce((sum, r) => sum + r.size, 0),
    elapsedMs: Math.round(performance.now() - started),
  };
}

/** A key as a path under a directory, or null when it would leave it. */
export function safeLocalPath(dir: string, key: string): string | null {
  const parts = key.split("/");
  if (key.startsWith("/") || parts.some((p) => p === ".." || p === "." || p === "")) return null;
  return `${dir.replace(/\/+$/, "")}/${key}`;
}

/**
 * Downloads keys (or, with `all`, every finished key under `prefix`) into `dir`,
 * each at `dir/KEY`; a local file with the same MD5 is skipped.
 */
export async function downloadMany(
  keys: string[],
  dir: string,
  options: SetOptions & { all?: boolean },
): Promise<SetResult> {
  const started = performance.now();
  const listed = await listRemote(options, options.all ? options.prefix ?? "" : "");
  const remote = new Map((listed?.files ?? []).map((f) => [f.key, f]));
  const wanted = options.all
    ? (listed?.files ?? []).filter((f) => f.complete).map((f) => f.key)
    : keys;
  if (options.all && listed === null) {
    throw new Error("The server has no LIST (a course server?): name the keys to download");
  }
  const total = wanted.reduce((sum, key) => sum + (remote.get(key)?.size ?? 0), 0);
  const progress = progressOf(options, total, wanted.length);
  const rows: FileRow[] = [];
  for (const key of wanted) {
    const held = remote.get(key);
    const path = safeLocalPath(dir, key);
    const row: FileRow = { key, path: path ?? "", size: held?.size ?? 0, status: "failed" };
    rows.push(row);
    try {
      if (path === null) {
        row.reason = `'${key}' would be written outside ${dir}: download it alone with -o FILE`;
        continue;
      }
      let local: Deno.FileInfo | null = null;
      try {
        local = await Deno.stat(path);
      } catch {
        // Not there yet.
      }
      if (local !== null) {
        const md5 = held?.md5 && local.size === held.size ? await md5File(path) : null;
        if (md5 !== null && md5 === held?.md5) {
          row.status = "skipped";
          row.reason = "unchanged (same MD5 as the server's)";
          row.md5 = md5;
          continue;
        }
        if (!options.force) {
          row.reason = `${path} exists with other content: use --force to overwrite it`;
          continue;
        }
      }
      const parent = path.slice(0, path.lastIndexOf("/"));
      if (parent) await Deno.mkdir(parent, { recursive: true });
      const result = await download(path, {
        ...options,
        key,
        onProgress: (done) => progress.file(done),
      });
      row.status = "downloaded";
      row.size = result.size;
      row.md5 = result.localMd5;
      row.elapsedMs = Math.round(result.elapsedMs);
      row.plan = result.plan;
    } catch (error) {
      row.reason = errorMessage(error);
    } finally {
      progress.finish(row.size);
    }
  }
  return summarize(rows, "downloaded", started);
}
