/**
 * Goodness of fit of measured gaps to the requested distribution: the
 * one-sample Kolmogorov-Smirnov test, and tests of the mean and the variance.
 * Pure functions over millisecond samples.
 *
 * @module
 */
import { cdf, type DistributionSpec, isContinuous, moments, normalCdf } from "./distributions.ts";
import { mean, variance } from "../shared/stats.ts";

/** Result of a one-sample KS test. */
export interface KsResult {
  /** Sample size. */
  n: number;
  /** Largest distance between the empirical CDF and the model's. */
  statistic: number;
  /** Probability of a distance at least this large if the samples follow the model. */
  pValue: number;
}

/** Kolmogorov's limiting survival function Q(λ) = 2 Σ (−1)^(k−1) e^(−2k²λ²). */
export function kolmogorovQ(lambda: number): number {
  if (lambda < 0.2) return 1;
  let sum = 0;
  for (let k = 1; k <= 100; k++) {
    const term = 2 * (k % 2 === 1 ? 1 : -1) * Math.exp(-2 * k * k * lambda * lambda);
    sum += term;
    if (Math.abs(term) < 1e-12) break;
  }
  return Math.min(1, Math.max(0, sum));
}

/**
 * One-sample KS test of `samples` against the CDF `model`. The p-value uses
 * Stephens' small-sample correction λ = (√n + 0.12 + 0.11/√n)·D.
 */
export function ksTest(samples: ArrayLike<number>, model: (x: number) => number): KsResult {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  if (n === 0) return { n, statistic: NaN, pValue: NaN };
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = model(sorted[i]);
    d = Math.max(d, (i + 1) / n - f, f - i / n);
  }
  const sqrtN = Math.sqrt(n);
  return { n, statistic: d, pValue: kolmogorovQ((sqrtN + 0.12 + 0.11 / sqrtN) * d) };
}

/** Everything `check` reports about the fit of measured gaps. */
export interface FitResult {
  n: number;
  /** Requested mean and variance (ms, ms²), and the measured ones. */
  expectedMean: number;
  measuredMean: number;
  /** (measured − expected) / expected. */
  meanRelativeError: number;
  /** Two-sided p-value of the z test of the mean (NaN when the variance is 0 or undefined). */
  meanPValue: number;
  expectedVariance: number;
  measuredVariance: number;
  /** measured / expected variance. */
  varianceRatio: number;
  /** KS test, or null for discrete distributions and point masses (where it does not apply). */
  ks: KsResult | null;
  /** The significance level `passed` uses. */
  alpha: number;
  /** KS p ≥ alpha (continuous), or the mean within `meanTolerance` (discrete). */
  passed: boolean;
  /** Why it passed or failed, in one sentence. */
  verdict: string;
}

/**
 * Tests measured gaps (ms) against `spec`. Continuous distributions pass when the
 * KS p-value is at least `alpha`; discrete ones and point masses (where any timer
 * jitter fails KS) pass when the mean is within `meanTolerance` of the requested one.
 */
export function fitGaps(
  samples: ArrayLike<number>,
  spec: DistributionSpec,
  alpha = 0.01,
  meanTolerance = 0.01,
): FitResult {
  const expected = moments(spec);
  const n = samples.length;
  const measuredMean = mean(samples);
  const measuredVariance = variance(samples);
  const meanRelativeError = (measuredMean - expected.mean) / expected.mean;
  const se = Math.sqrt(expected.variance / n);
  const meanPValue = Number.isFinite(se) && se > 0
    ? 2 * (1 - normalCdf(Math.abs(measuredMean - expected.mean) / se))
    : NaN;
  const ks = isContinuous(spec) ? ksTest(samples, cdf(spec)) : null;
  let passed: boolean;
  let verdict: string;
  if (n === 0) {
    passed = false;
    verdict = "no gaps were measured";
  } else if (ks) {
    passed = ks.pValue >= alpha;
    verdict = passed
      ? `KS D=${ks.statistic.toFixed(4)}, p=${
        ks.pValue.toFixed(4)
      } ≥ ${alpha}: consistent with ${spec.name}`
      : `KS D=${ks.statistic.toFixed(4)}, p=${
        ks.pValue.toExponential(2)
      } < ${alpha}: not ${spec.name}`;
  } else {
    passed = Math.abs(meanRelativeError) <= meanTolerance;
    verdict = `${spec.name} is discrete, so KS does not apply; mean off by ${
      (meanRelativeError * 100).toFixed(3)
    }% (tolerance ${meanTolerance * 100}%)`;
  }
  return {
    n,
    expectedMean: expected.mean,
    measuredMean,
    meanRelativeError,
    meanPValue,
    expectedVariance: expected.variance,
    measuredVariance,
    varianceRatio: measuredVariance / expected.variance,
    ks,
    alpha,
    passed,
    verdict,
  };
}
