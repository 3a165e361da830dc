/**
 * CPU pressure (Linux PSI, `/proc/pressure/cpu`): how much of the time runnable
 * tasks waited for a CPU. Benchmarks record it before and after each run, because
 * on a shared 2-core machine other programs' load moves every latency figure.
 *
 * @module
 */

/** One reading of `/proc/pressure/cpu` ("some" line). */
export interface Pressure {
  /** Share of the last 10 s in which some runnable task waited for a CPU, in percent. */
  avg10: number;
  /** Total stall time since boot, in microseconds. */
  totalUs: number;
}

/** The raw "some" line of `/proc/pressure/cpu`, or `null` where the kernel has no PSI. */
export function pressureLine(): string | null {
  try {
    const text = Deno.readTextFileSync("/proc/pressure/cpu");
    return text.split("\n").find((line) => line.startsWith("some")) ?? null;
  } catch {
    return null;
  }
}

/** Reads `/proc/pressure/cpu`, or `null` where the kernel has no PSI. */
export function readPressure(): Pressure | null {
  const some = pressureLine();
  if (!some) return null;
  const avg10 = Number(/avg10=([\d.]+)/.exec(some)?.[1]);
  const totalUs = Number(/total=(\d+)/.exec(some)?.[1]);
  return Number.isFinite(avg10) && Number.isFinite(totalUs) ? { avg10, totalUs } : null;
}

/** CPU pressure around one run: before, after, and the stalled share of the run. */
export interface PressureWindow {
  before: Pressure | null;
  after: Pressure | null;
  /** Stall time during the run over its wall time, in percent (null without PSI). */
  stallPct: number | null;
}

/** Combines readings taken before and after a run of `wallMs`. */
export function pressureWindow(
  before: Pressure | null,
  after: Pressure | null,
  wallMs: number,
): PressureWindow {
  const stallPct = before && after && wallMs > 0
    ? Math.round(((after.totalUs - before.totalUs) / (wallMs * 1000)) * 1000) / 10
    : null;
  return { before, after, stallPct };
}

/** Above this stall share (percent) or avg10 a run is flagged as measured on a busy machine. */
export const BUSY_THRESHOLD_PCT = 10;

/** True when a window says the machine was busy. */
export function wasBusy(window: PressureWindow): boolean {
  return (window.stallPct ?? 0) > BUSY_THRESHOLD_PCT ||
    (window.before?.avg10 ?? 0) > BUSY_THRESHOLD_PCT;
}
