/**
 * An HDR-style (log-linear) histogram of non-negative integer values: constant
 * memory (about 47 KB at most) whatever the count, at most 1/128 (0.79 %)
 * relative error at any value from 1 to 2^53, and exact merging, so several
 * generators, workers or runs add up to one distribution. Latency tools record
 * nanoseconds or microseconds into it; sizes record bytes.
 *
 * Layout (as HdrHistogram with two significant digits): values below 256 have a
 * bucket each; above that, every power of two is split into 128 equal buckets.
 *
 * @example
 * ```ts
 * const h = new HdrHistogram("us");
 * for (const v of [120, 130, 5_000]) h.record(v);
 * h.percentile(50); // 130
 * const copy = HdrHistogram.fromJSON(JSON.parse(JSON.stringify(h.toJSON())));
 * ```
 *
 * @module
 */

/** Sub-buckets per power of two above the linear range: the error bound is 1 / SUB. */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS; // 128
/** Values below this have one bucket each. */
const LINEAR = SUB * 2; // 256
/** Largest value a histogram takes: 2^53 − 1. */
export const HDR_MAX_VALUE = Number.MAX_SAFE_INTEGER;
const BUCKETS = LINEAR + (53 - (SUB_BITS + 1)) * SUB;

/** The serialised form: sparse `[bucketIndex, count]` pairs plus exact extremes. */
export interface HdrHistogramData {
  /** Unit of the recorded values ("ns", "us", "bytes", ...). */
  unit: string;
  /** Values recorded. */
  count: number;
  /** Exact sum of recorded values (for the mean). */
  sum: number;
  /** Exact smallest value, or null when empty. */
  min: number | null;
  /** Exact largest value, or null when empty. */
  max: number | null;
  /** Non-empty buckets as `[index, count]`, ascending index. */
  buckets: [number, number][];
}

/** The usual percentile set of a latency report. */
export interface PercentileSummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  p9999: number;
  max: number;
}

/** Bucket index of an integer value in `[0, 2^53)`. */
export function hdrBucketIndex(value: number): number {
  if (value < LINEAR) return value;
  // Bit length of value, minus the SUB_BITS + 1 bits a bucket keeps.
  const bits = value < 2 ** 32 ? 32 - Math.clz32(value) : Math.floor(Math.log2(value)) + 1;
  let shift = bits - (SUB_BITS + 1);
  let top = Math.floor(value / 2 ** shift);
  // Math.log2 can round up just below a power of two; keep top in [SUB, 2·SUB).
  if (top < SUB) {
    shift -= 1;
    top = Math.floor(value / 2 ** shift);
  }
  return LINEAR + (shift - 1) * SUB + (top - SUB);
}

/** Lowest value that falls into bucket `index`. */
export function hdrBucketLow(index: number): number {
  if (index < LINEAR) return index;
  const shift = Math.floor((index - LINEAR) / SUB) + 1;
  const top = SUB + ((index - LINEAR) % SUB);
  return top * 2 ** shift;
}

/** Highest value that falls into bucket `index`. */
export function hdrBucketHigh(index: number): number {
  if (index < LINEAR) return index;
  const shift = Math.floor((index - LINEAR) / SUB) + 1;
  return hdrBucketLow(index) + 2 ** shift - 1;
}

/** A log-linear histogram; see the module documentation. */
export class HdrHistogram {
  /** Unit of the recorded values, carried into JSON. */
  readonly unit: string;
  #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  /** Creates an empty histogram whose values are in `unit`. */
  constructor(unit = "us") {
    this.unit = unit;
  }

  /** Values recorded. */
  get count(): number {
    return this.#count;
  }

  /** Exact smallest value (`NaN` when empty). */
  get min(): number {
    return this.#count === 0 ? NaN : this.#min;
  }

  /** Exact largest value (`NaN` when empty). */
  get max(): number {
    return this.#count === 0 ? NaN : this.#max;
  }

  /** Exact mean (`NaN` when empty). */
  get mean(): number {
    return this.#count === 0 ? NaN : this.#sum / this.#count;
  }

  /**
   * Records `value` (rounded to an integer, clamped to `[0, 2^53)`) `count` times.
   * Negative values are recorded as 0: a clock that went backwards is not a
   * negative latency.
   */
  record(value: number, count = 1): void {
    let v = Math.round(value);
    if (!(v > 0)) v = 0; // also NaN
    if (v > HDR_MAX_VALUE) v = HDR_MAX_VALUE;
    this.#counts[hdrBucketIndex(v)] += count;
    this.#count += count;
    this.#sum += v * count;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  /**
   * The value at percentile `p` (0–100): the highest value of the bucket that
   * holds it, clamped to the exact extremes, so the answer is never below the
   * true percentile and at most 1/128 above it. `NaN` when empty.
   */
  percentile(p: number): number {
    if (this.#count === 0) return NaN;
    if (p <= 0) return this.#min;
    if (p >= 100) return this.#max;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i];
      if (seen >= rank) {
        return Math.min(this.#max, Math.max(this.#min, hdrBucketHigh(i)));
      }
    }
    return this.#max;
  }

  /** count, min, mean, p50, p90, p99, p99.9, p99.99 and max (`NaN`s when empty). */
  summary(): PercentileSummary {
    return {
      count: this.#count,
      min: this.min,
      mean: this.mean,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
      p999: this.percentile(99.9),
      p9999: this.percentile(99.99),
      max: this.max,
    };
  }

  /** Adds every value of `other` (same unit) into this histogram; exact. */
  merge(other: HdrHistogram): this {
    if (other.unit !== this.unit) {
      throw new RangeError(
        `Cannot merge histograms in different units: ${this.unit} and ${other.unit}`,
      );
    }
    const counts = other.#counts;
    for (let i = 0; i < BUCKETS; i++) if (counts[i] !== 0) this.#counts[i] += counts[i];
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
    return this;
  }

  /** Removes every value (keeps the unit). */
  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sum = 0;
    this.#min = Infinity;
    this.#max = -Infinity;
  }

  /** Non-empty buckets, ascending: the percentile spectrum's raw material. */
  *buckets(): Generator<{ low: number; high: number; count: number }> {
    for (let i = 0; i < BUCKETS; i++) {
      const count = this.#counts[i];
      if (count !== 0) yield { low: hdrBucketLow(i), high: hdrBucketHigh(i), count };
    }
  }

  /** The serialised form, for `--json` documents and `merge` commands. */
  toJSON(): HdrHistogramData {
    const buckets: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) {
      if (this.#counts[i] !== 0) buckets.push([i, this.#counts[i]]);
    }
    return {
      unit: this.unit,
      count: this.#count,
      sum: this.#sum,
      min: this.#count === 0 ? null : this.#min,
      max: this.#count === 0 ? null : this.#max,
      buckets,
    };
  }

  /** Rebuilds a histogram from {@linkcode HdrHistogram.toJSON}'s output; checks it. */
  static fromJSON(data: HdrHistogramData): HdrHistogram {
    if (typeof data !== "object" || data === null || !Array.isArray(data.buckets)) {
      throw new TypeError("Invalid histogram: expected an object with a buckets array");
    }
    const h = new HdrHistogram(String(data.unit ?? "us"));
    let count = 0;
    for (const pair of data.buckets) {
      const [index, n] = Array.isArray(pair) ? pair : [NaN, NaN];
      if (!Number.isInteger(index) || index < 0 || index >= BUCKETS || !(n >= 0)) {
        throw new TypeError(`Invalid histogram bucket ${JSON.stringify(pair)}`);
      }
      h.#counts[index] += n;
      count += n;
    }
    if (count !== data.count) {
      throw new TypeError(
        `Invalid histogram: buckets hold ${count} values, count says ${data.count}`,
      );
    }
    h.#count = count;
    h.#sum = Number(data.sum) || 0;
    if (count > 0) {
      h.#min = Number(data.min);
      h.#max = Number(data.max);
    }
    return h;
  }
}

/**
 * The same summary with every value (not the count) passed through `convert`,
 * e.g. microseconds to rounded milliseconds.
 */
export function convertSummary(
  summary: PercentileSummary,
  convert: (value: number) => number,
): PercentileSummary {
  return {
    count: summary.count,
    min: convert(summary.min),
    mean: convert(summary.mean),
    p50: convert(summary.p50),
    p90: convert(summary.p90),
    p99: convert(summary.p99),
    p999: convert(summary.p999),
    p9999: convert(summary.p9999),
    max: convert(summary.max),
  };
}
