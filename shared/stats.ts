/**
 * Descriptive statistics over samples: every figure the tools report comes from here.
 *
 * @module
 */

/** Summary of a sample list. All fields are `NaN` (count 0) for an empty list. */
export interface Summary {
  count: number;
  mean: number;
  /** Sample standard deviation (n − 1); 0 for a single value. */
  stddev: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Arithmetic mean; `NaN` for no values. */
export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum / values.length;
}

/** Sample variance (n − 1); 0 for one value, `NaN` for none. */
export function variance(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  if (values.length === 1) return 0;
  const m = mean(values);
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (values[i] - m) ** 2;
  return sum / (values.length - 1);
}

/** Sample standard deviation (n − 1). */
export function stddev(values: ArrayLike<number>): number {
  return Math.sqrt(variance(values));
}

/** Smallest value; `NaN` for none. */
export function min(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let result = Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] < result) result = values[i];
  return result;
}

/** Largest value; `NaN` for none. */
export function max(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let result = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > result) result = values[i];
  return result;
}

/** Numeric ascending sort into a new `Float64Array`. */
export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/**
 * Percentile `p` (0–100) of already sorted values, by linear interpolation between
 * closest ranks (the method of NumPy's default and of Excel's PERCENTILE.INC).
 */
export function percentileSorted(sortedValues: ArrayLike<number>, p: number): number {
  const n = sortedValues.length;
  if (n === 0) return NaN;
  if (p <= 0) return sortedValues[0];
  if (p >= 100) return sortedValues[n - 1];
  const rank = (p / 100) * (n - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sortedValues[low] + (sortedValues[high] - sortedValues[low]) * (rank - low);
}

/** Percentile `p` (0–100) of values in any order. */
export function percentile(values: ArrayLike<number>, p: number): number {
  return percentileSorted(sorted(values), p);
}

/** Median of values in any order. */
export function median(values: ArrayLike<number>): number {
  return percentile(values, 50);
}

/** Count, mean, standard deviation, min, p50, p95, p99 and max in one pass over a sorted copy. */
export function summarize(values: ArrayLike<number>): Summary {
  const s = sorted(values);
  return {
    count: s.length,
    mean: mean(s),
    stddev: s.length === 0 ? NaN : stddev(s),
    min: s.length === 0 ? NaN : s[0],
    p50: percentileSorted(s, 50),
    p95: percentileSorted(s, 95),
    p99: percentileSorted(s, 99),
    max: s.length === 0 ? NaN : s[s.length - 1],
  };
}

/** A histogram: `counts[i]` values fell in `[edges[i], edges[i + 1])` (last bin closed). */
export interface Histogram {
  edges: number[];
  counts: number[];
}

/**
 * Histogram with `bins` equal-width bins over `[lo, hi]` (default: the data's range).
 * Values outside the range are not counted.
 */
export function histogram(
  values: ArrayLike<number>,
  bins: number,
  lo: number = min(values),
  hi: number = max(values),
): Histogram {
  if (!Number.isInteger(bins) || bins < 1) {
    throw new RangeError(`bins must be a positive integer, got ${bins}`);
  }
  const width = hi > lo ? (hi - lo) / bins : 1;
  const edges = Array.from({ length: bins + 1 }, (_, i) => lo + i * width);
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= lo && v <= hi)) continue;
    const bin = Math.min(bins - 1, Math.floor((v - lo) / width));
    counts[bin]++;
  }
  return { edges, counts };
}

/**
 * Histogram with logarithmic bins (for latencies that span decades): `perDecade`
 * bins per power of ten between the smallest and largest positive value.
 */
export function logHistogram(values: ArrayLike<number>, perDecade = 10): Histogram {
  const positive = Array.from(values).filter((v) => v > 0);
  if (positive.length === 0) return { edges: [], counts: [] };
  const lo = Math.floor(Math.log10(min(positive)) * perDecade) / perDecade;
  const hi = Math.ceil(Math.log10(max(positive)) * perDecade) / perDecade + 1 / perDecade;
  const bins = Math.max(1, Math.round((hi - lo) * perDecade));
  const edges = Array.from({ length: bins + 1 }, (_, i) => 10 ** (lo + i / perDecade));
  const counts = new Array<number>(bins).fill(0);
  for (const v of positive) {
    const bin = Math.min(bins - 1, Math.max(0, Math.floor((Math.log10(v) - lo) * perDecade)));
    counts[bin]++;
  }
  return { edges, counts };
}

/** Rounds every number field of a summary to `digits` decimals (for display and JSON). */
export function roundSummary(summary: Summary, digits = 3): Summary {
  const f = 10 ** digits;
  const r = (v: number) => (Number.isFinite(v) ? Math.round(v * f) / f : v);
  return {
    count: summary.count,
    mean: r(summary.mean),
    stddev: r(summary.stddev),
    min: r(summary.min),
    p50: r(summary.p50),
    p95: r(summary.p95),
    p99: r(summary.p99),
    max: r(summary.max),
  };
}
