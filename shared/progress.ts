/**
 * Progress bars on stderr, shown only when stderr is a terminal (and not with
 * `--quiet` or `--json`), so pipes and logs stay clean.
 *
 * @module
 */
import cliProgress from "cli-progress";
import process from "node:process";

/** A progress bar; every method is a no-op when the bar is hidden. */
export interface Progress {
  /** Sets the completed count. */
  update(done: number): void;
  /** Adds to the completed count. */
  increment(by?: number): void;
  /** Removes the bar from the terminal. */
  stop(): void;
}

/**
 * Starts a progress bar with rate and ETA for `total` units of `unit`
 * (e.g. `ports`), if stderr is a terminal and `enabled` is true.
 */
export function startProgress(total: number, unit: string, enabled = true): Progress {
  if (!enabled || !Deno.stderr.isTerminal() || total <= 0) {
    return { update() {}, increment() {}, stop() {} };
  }
  const bar = new cliProgress.SingleBar(
    {
      format:
        `{bar} {percentage}% | {value}/{total} ${unit} | {speed} ${unit}/s | ETA {eta_formatted}`,
      stream: process.stderr,
      clearOnComplete: true,
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  let done = 0;
  bar.start(total, 0, { speed: "0" });
  const payload = () => ({
    speed: Math.round(done / Math.max(1e-3, (performance.now() - started) / 1000)),
  });
  return {
    update(value) {
      done = value;
      bar.update(done, payload());
    },
    increment(by = 1) {
      done += by;
      bar.update(done, payload());
    },
    stop() {
      bar.stop();
    },
  };
}
