/**
 * Progress bars on stderr, shown only when stderr is a terminal (and not with
 * `--quiet` or `--json`), so pipes and logs stay clean. The bar library (and
 * with it Node compatibility) loads only when a bar is shown.
 *
 * @module
 */

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
  const started = performance.now();
  let done = 0;
  let stopped = false;
  let bar: { update(value: number, payload: object): void; stop(): void } | null = null;
  const payload = () => ({
    speed: Math.round(done / Math.max(1e-3, (performance.now() - started) / 1000)),
  });
  // Updates before the library has loaded are kept in `done` and shown when it has.
  import("cli-progress").then(({ default: cliProgress }) => {
    if (stopped) return;
    const shown = new cliProgress.SingleBar(
      {
        format:
          `{bar} {percentage}% | {value}/{total} ${unit} | {speed} ${unit}/s | ETA {eta_formatted}`,
        stream: globalThis.process.stderr,
        clearOnComplete: true,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    shown.start(total, done, payload());
    bar = shown;
  }).catch(() => {});
  return {
    update(value) {
      done = value;
      bar?.update(done, payload());
    },
    increment(by = 1) {
      done += by;
      bar?.update(done, payload());
    },
    stop() {
      stopped = true;
      bar?.stop();
    },
  };
}
