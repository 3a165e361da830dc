/**
 * Percentiles and confidence: HDR summaries in microseconds, and a
 * distribution-free confidence interval on the median of runs.
 *
 * @module
 */
import { HdrHistogram, type PercentileSummary } from "../shared/hdr_histogram.ts";
import { median } from "../shared/stats.ts";

/** A confidence interval on a median. */
export interface MedianCI {
  low: number;
  high: number;
  /** Coverage of [low, high], 0–1. */
  level: number;
  /** Half the width, as a fraction of the median (netperf's "±x %"). */
  halfWidthPct: number;
}

function binomialCdf(k: number, n: number): number {
  let sum = 0;
  let term = 0.5 ** n; // C(n, 0) / 2^n
  for (let i = 0; i <= k; i++) {
    sum += term;
    term = (term * (n - i)) / (i + 1);
  }
  return sum;
}

/**
 * The order-statistic interval [x(k), x(n+1-k)] with the largest k whose coverage
 * is still at least `level` (with fewer than six values: min–max and its coverage).
 */
export function medianConfidence(values: number[], level = 0.95): MedianCI {
  const sortedValues = [...values].sort((a, b) => a - b);
  const n = sortedValues.length;
  let k = 1;
  while (k + 1 <= n / 2 && 1 - 2 * binomialCdf(k, n) >= level) k++;
  const coverage = n === 0 ? 0 : 1 - 2 * binomialCdf(k - 1, n);
  const low = sortedValues[k - 1] ?? NaN;
  const high = sortedValues[n - k] ?? NaN;
  const mid = median(sortedValues);
  return {
    low,
    high,
    level: Math.round(coverage * 10000) / 10000,
    halfWidthPct: mid > 0 ? Math.round(((high - low) / 2 / mid) * 10000) / 100 : 0,
  };
}

/** Records microsecond samples as nanoseconds. */
export function hdrOf(samples: Float64Array): HdrHistogram {
  const h = new HdrHistogram("ns");
  for (const us of samples) h.record(Math.max(0, Math.round(us * 1000)));
  return h;
}

/** An HDR summary in nanoseconds, as microseconds. */
export function hdrSummaryUs(h: HdrHistogram): PercentileSummary {
  const s = h.summary();
  const us = (ns: number) => Math.round(ns) / 1000;
  return {
    count: s.count,
    min: us(s.min),
    mean: us(s.mean),
    p50: us(s.p50),
    p90: us(s.p90),
    p99: us(s.p99),
    p999: us(s.p999),
    p9999: us(s.p9999),
    max: us(s.max),
  };
}
