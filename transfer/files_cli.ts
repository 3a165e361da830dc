/**
 * Text and progress for the multi-file commands (`upload PATH...`,
 * `download KEY... | --all`, `list`): formatting only; the work is in files.ts.
 *
 * @module
 */
import { startProgress } from "../shared/progress.ts";
import { formatSize } from "./protocol.ts";
import type { RemoteFile, SetOptions, SetResult } from "./files.ts";

/** One progress display for the whole set (bytes, rate, ETA; files done in the summary). */
export function setProgress(enabled: boolean): {
  onProgress: SetOptions["onProgress"];
  stop(): void;
} {
  let bar: ReturnType<typeof startProgress> | null = null;
  return {
    onProgress: (done, total) => {
      bar ??= startProgress(Math.max(1, Math.ceil(total / 1024)), "KiB", enabled);
      bar.update(Math.floor(done / 1024));
    },
    stop: () => bar?.stop(),
  };
}

/** The set's rows and a summary line. */
export function setText(result: SetResult, verb: string): string {
  const lines = result.files.map((row) => {
    const status = row.status.padEnd(10);
    const size = formatSize(row.size).padStart(10);
    const tail = row.reason
      ? `  ${row.reason}`
      : row.elapsedMs !== undefined
      ? `  ${(row.elapsedMs / 1000).toFixed(2)} s`
      : "";
    return `${status} ${size}  ${row.key}${tail}`;
  });
  const seconds = result.elapsedMs / 1000;
  const rate = seconds > 0 ? result.bytes / seconds / 1e6 : 0;
  lines.push(
    `${result.files.length} files: ${result.done} ${verb}, ${result.skipped} skipped, ` +
      `${result.failed} failed; ${formatSize(result.bytes)} in ${seconds.toFixed(2)} s ` +
      `(${rate.toFixed(1)} MB/s)`,
  );
  return lines.join("\n");
}

/** The `list` rows. */
export function listText(files: RemoteFile[], truncated: boolean): string {
  const lines = files.map((f) =>
    `${f.complete ? "complete" : "partial "} ${formatSize(f.size).padStart(10)}  ${
      f.md5 ?? "-".padEnd(32)
    }  ${f.key}`
  );
  lines.push(`${files.length} keys${truncated ? " (more not shown: narrow the prefix)" : ""}`);
  return lines.join("\n");
}
