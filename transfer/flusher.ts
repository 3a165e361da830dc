/**
 * Keeps the disk writing while a file is being written, so the final sync (which
 * a transfer's last reply waits for) has little left to do: the server's upload
 * and the client's download both use it.
 *
 * With FFI (Linux): `sync_file_range(SYNC_FILE_RANGE_WRITE)` every 8 MiB, on
 * Deno's blocking pool. It starts writeback without waiting for it and without
 * a device cache flush, so the disk is kept busy from the first megabytes and
 * only the final `fsync` flushes its cache, once (as `dd conv=fdatasync` does).
 * Otherwise `syncData` every 64 MiB (each one also flushes the device's cache,
 * so they are spaced further apart). One request runs at a time either way.
 *
 * @module
 */

const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  sync_file_range: {
    parameters: ["i32", "i64", "i64", "u32"],
    result: "i32",
    nonblocking: true,
  },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize", nonblocking: true },
  fdatasync: { parameters: ["i32"], result: "i32", nonblocking: true },
} as const;

/** libc's file calls used by this module and direct_writer.ts. */
export type FileLibc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

let libc: FileLibc | null | undefined;

/** libc through FFI (Linux, FFI granted), or null: callers then take their portable path. */
export function loadLibc(): FileLibc | null {
  if (libc !== undefined) return libc;
  libc = null;
  try {
    if (Deno.build.os !== "linux") return null;
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
    libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
  } catch {
    libc = null;
  }
  return libc;
}

/** Bytes between writeback requests with `sync_file_range`. */
export const WRITEBACK_EVERY_BYTES = 8 << 20;
/** Bytes between `syncData` calls without FFI. */
export const SYNC_EVERY_BYTES = 64 << 20;

const O_WRONLY_CLOEXEC = 0o1 | 0o2000000;
const SYNC_FILE_RANGE_WRITE = 2;
/** `#fd` once closed (never reopened). */
const CLOSED = -2;

/** See the module documentation. */
export class Flusher {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  readonly #every: number;
  /** Opened at the first request (small files never need one): -1 until then, CLOSED after. */
  #fd = -1;
  #unflushed = 0;
  #running: Promise<void> | null = null;
  #closed = false;

  /** A flusher for `file`, open at `path`. */
  constructor(path: string, file: Deno.FsFile) {
    this.#file = file;
    this.#path = path;
    this.#every = loadLibc() ? WRITEBACK_EVERY_BYTES : SYNC_EVERY_BYTES;
  }

  /** Which way the disk is kept busy here. */
  get engine(): "sync_file_range" | "syncData" {
    return loadLibc() ? "sync_file_range" : "syncData";
  }

  /** The descriptor for `sync_file_range`, opened on first use; -1 without FFI. */
  #descriptor(): number {
    if (this.#fd === -1 && libc) {
      this.#fd = libc.symbols.open(
        new TextEncoder().encode(this.#path + "\0"),
        O_WRONLY_CLOEXEC,
        0,
      );
    }
    return this.#fd;
  }

  /** `bytes` more were written. */
  wrote(bytes: number): void {
    this.#unflushed += bytes;
    if (this.#unflushed < this.#every || this.#running !== null || this.#closed) return;
    this.#unflushed = 0;
    const fd = this.#descriptor();
    const request = fd >= 0
      ? libc!.symbols.sync_file_range(fd, 0n, 0n, SYNC_FILE_RANGE_WRITE).then(() => {})
      : this.#file.syncData();
    this.#running = request.catch(() => {}).finally(() => {
      this.#running = null;
      if (this.#closed) this.#closeFd();
    });
  }

  /** Waits for the request in flight (the caller syncs next). */
  async settle(): Promise<void> {
    await this.#running;
  }

  /** Stops (after the request in flight) and closes its descriptor. */
  close(): void {
    this.#closed = true;
    if (this.#running === null) this.#closeFd();
  }

  #closeFd(): void {
    if (this.#fd >= 0) libc?.symbols.close(this.#fd);
    this.#fd = CLOSED;
  }
}
