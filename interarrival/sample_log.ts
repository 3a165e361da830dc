/**
 * The `serve --out FILE.csv` sample log: one CSV row per connection setup and
 * per message, streamed to a temporary file as they arrive (so the server's
 * memory does not grow with the run) and renamed to FILE when the server stops.
 * `interarrival decode` reads it back.
 *
 * @module
 */

/** The log's header row. The first seven columns are the study-era log's. */
export const LOG_COLUMNS = [
  "kind",
  "connection",
  "sequence",
  "remote",
  "time_epoch_ms",
  "interarrival_ms",
  "bytes",
  "flow",
  "flow_sequence",
  "sent_epoch_ms",
  "delay_ms",
] as const;

const FLUSH_CHARS = 256 * 1024;

function fixed(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : "";
}

/** Streams sample rows to `path` (through a temporary name). */
export class SampleLog {
  #file: Deno.FsFile;
  #temp: string;
  #parts: string[] = [];
  #chars = 0;
  #encoder = new TextEncoder();
  #closed = false;
  rows = 0;

  private constructor(readonly path: string, temp: string, file: Deno.FsFile) {
    this.#temp = temp;
    this.#file = file;
    this.#push(LOG_COLUMNS.join(",") + "\n");
  }

  /** Creates the temporary file next to `path`. */
  static open(path: string): SampleLog {
    const temp = `${path}.tmp-${Deno.pid}`;
    const file = Deno.openSync(temp, { write: true, create: true, truncate: true });
    return new SampleLog(path, temp, file);
  }

  /** A connection setup row. */
  connection(id: number, remote: string, at: number): void {
    this.#push(`connection,${id},0,${remote},${fixed(at)},,,,,,\n`);
  }

  /** A message row; -1 or NaN fields are left empty. */
  message(
    connection: number,
    position: number,
    remote: string,
    at: number,
    gapMs: number,
    bytes: number,
    flow: number,
    sequence: number,
    sentAt: number,
    delayMs: number,
  ): void {
    this.#push(
      `data,${connection || ""},${position},${remote},${fixed(at)},${fixed(gapMs)},${bytes},${
        flow < 0 ? "" : flow
      },${sequence < 0 ? "" : sequence},${sentAt < 0 ? "" : fixed(sentAt)},${fixed(delayMs)}\n`,
    );
  }

  #push(text: string): void {
    if (this.#closed) return;
    this.rows++;
    this.#parts.push(text);
    this.#chars += text.length;
    if (this.#chars >= FLUSH_CHARS) this.flush();
  }

  /** Writes buffered rows to the temporary file. */
  flush(): void {
    if (this.#parts.length === 0 || this.#closed) return;
    const bytes = this.#encoder.encode(this.#parts.join(""));
    this.#parts = [];
    this.#chars = 0;
    let offset = 0;
    while (offset < bytes.length) offset += this.#file.writeSync(bytes.subarray(offset));
  }

  /** Flushes, closes and renames the file to `path`. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.#file.close();
    Deno.renameSync(this.#temp, this.path);
  }

  /** Closes and removes the temporary file (the run failed). */
  discard(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
    try {
      Deno.removeSync(this.#temp);
    } catch {
      // Already gone.
    }
  }
}

/** One message row of a log, as `decode` reads it. */
export interface LogMessage {
  connection: number | null;
  remote: string;
  receivedAt: number;
  bytes: number;
  flow: number | null;
  sequence: number | null;
  sentAt: number | null;
}

function numberOrNull(text: string | undefined): number | null {
  if (text === undefined || text === "") return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}

/**
 * Parses one log line into a message, or null for the header, connection rows
 * and blank lines. Throws on a data row that is not a log row.
 */
export function parseLogLine(line: string, lineNumber: number): LogMessage | null {
  if (!line.startsWith("data,")) return null;
  const f = line.split(",");
  const receivedAt = Number(f[4]), bytes = Number(f[6]);
  if (f.length < 7 || !Number.isFinite(receivedAt) || !Number.isInteger(bytes)) {
    throw new Error(
      `Line ${lineNumber} is not a sample row (expected ${LOG_COLUMNS.join(",")}): ${
        line.slice(0, 80)
      }`,
    );
  }
  return {
    connection: numberOrNull(f[1]),
    remote: f[3],
    receivedAt,
    bytes,
    flow: numberOrNull(f[7]),
    sequence: numberOrNull(f[8]),
    sentAt: numberOrNull(f[9]),
  };
}

/** Reads a log's message rows one by one, without holding the file in memory. */
export async function* readLog(path: string): AsyncGenerator<LogMessage> {
  const file = await Deno.open(path);
  const decoder = new TextDecoder();
  let rest = "";
  let lineNumber = 0;
  try {
    for await (const chunk of file.readable) {
      rest += decoder.decode(chunk, { stream: true });
      let newline: number;
      let start = 0;
      while ((newline = rest.indexOf("\n", start)) !== -1) {
        lineNumber++;
        const message = parseLogLine(rest.slice(start, newline), lineNumber);
        start = newline + 1;
        if (message) yield message;
      }
      rest = rest.slice(start);
    }
    rest += decoder.decode();
    if (rest.trim() !== "") {
      const message = parseLogLine(rest, lineNumber + 1);
      if (message) yield message;
    }
  } finally {
    try {
      file.close();
    } catch {
      // The readable closed it.
    }
  }
}
