/**
 * Inter-event time distributions (the study's three plus the ones D-ITG offers),
 * a seeded random source, and each distribution's mean, variance and CDF for the
 * goodness-of-fit tests. Pure: no I/O, no clock.
 *
 * Every time is in seconds on the command line (as in the study) and in
 * milliseconds inside the tool.
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";
import { gammaFn, lowerRegularizedGamma, normalCdf, normalPdf } from "./special_functions.ts";

export { logGamma, lowerRegularizedGamma, normalCdf, normalPdf } from "./special_functions.ts";

/** Names of the supported distributions. */
export type DistributionName =
  | "deterministic"
  | "uniform"
  | "exponential"
  | "normal"
  | "pareto"
  | "cauchy"
  | "gamma"
  | "weibull"
  | "poisson"
  | "constant";

/** A distribution with its parameters, as given on the command line. */
export interface DistributionSpec {
  name: DistributionName;
  /** Parameters as the user gave them (seconds, rates per second, shapes). */
  params: number[];
}

interface DistributionInfo {
  /** Spellings accepted by `--dist`. */
  aliases: string[];
  /** Parameter names for help and errors. */
  params: string[];
  /** How many parameters may be omitted from the end (defaults below). */
  defaults?: number[];
  /** Whether the values are discrete or a point mass (no KS test). */
  discrete: boolean;
  description: string;
}

/** A table entry: `discrete` marks values that are discrete or a point mass. */
function info(
  aliases: string[],
  params: string[],
  discrete: boolean,
  description: string,
): DistributionInfo {
  return { aliases, params, discrete, description };
}

/** Everything about each distribution that help texts and errors need. */
export const DISTRIBUTIONS: Readonly<Record<DistributionName, DistributionInfo>> = {
  deterministic: info(
    ["d", "det", "deterministic", "fixed"],
    ["T (fixed inter-event time, s)"],
    true,
    "every gap is T seconds",
  ),
  uniform: info(
    ["u", "uni", "uniform"],
    ["T (interval size, s)"],
    false,
    "uniform on [0, T] seconds",
  ),
  exponential: info(
    ["e", "exp", "exponential"],
    ["λ (mean rate, events/s)"],
    false,
    "exponential with rate λ per second (mean 1/λ s)",
  ),
  normal: info(
    ["n", "norm", "normal"],
    ["μ (mean, s)", "σ (standard deviation, s)"],
    false,
    "normal, negative draws are drawn again (truncated at 0)",
  ),
  pareto: info(
    ["pareto", "par"],
    ["xm (scale = minimum, s)", "α (shape)"],
    false,
    "Pareto with minimum xm and shape α",
  ),
  cauchy: info(
    ["cauchy", "cau"],
    ["x0 (location, s)", "γ (scale, s)"],
    false,
    "Cauchy, negative draws are drawn again (truncated at 0)",
  ),
  gamma: info(
    ["g", "gamma"],
    ["k (shape)", "θ (scale, s)"],
    false,
    "gamma with shape k and scale θ (mean kθ)",
  ),
  weibull: info(
    ["w", "weibull"],
    ["k (shape)", "λ (scale, s)"],
    false,
    "Weibull with shape k and scale λ",
  ),
  poisson: info(
    ["poisson", "poi"],
    ["m (mean gap, s)"],
    true,
    "gaps are a Poisson-distributed count of whole milliseconds with mean m",
  ),
  constant: info(
    ["c", "const", "constant", "rate"],
    ["r (rate, events/s)"],
    true,
    "constant rate: every gap is 1/r seconds",
  ),
};

/** Resolves a `--dist` spelling to a distribution name. */
export function parseDistributionName(text: string): DistributionName {
  const key = text.trim().toLowerCase();
  for (const [name, info] of Object.entries(DISTRIBUTIONS)) {
    if (info.aliases.includes(key)) return name as DistributionName;
  }
  const spellings = Object.values(DISTRIBUTIONS).map((info) => info.aliases[0]).join(", ");
  throw new UsageError(`Unknown distribution '${text}' for --dist: expected one of ${spellings}`);
}

/**
 * Parses and validates a distribution and its parameters.
 *
 * @throws {UsageError} naming the bad value and why (count, sign, range).
 */
export function parseDistribution(name: string, params: number[]): DistributionSpec {
  const dist = parseDistributionName(name);
  const info = DISTRIBUTIONS[dist];
  if (params.length !== info.params.length) {
    throw new UsageError(
      `--dist ${dist} takes ${info.params.length} --param value${
        info.params.length > 1 ? "s" : ""
      } (${info.params.join(", ")}), got ${params.length}`,
    );
  }
  for (const [i, value] of params.entries()) {
    if (!Number.isFinite(value)) {
      throw new UsageError(`--param ${info.params[i]} must be a number, got '${value}'`);
    }
  }
  const positive = (i: number) => {
    if (!(params[i] > 0)) {
      throw new UsageError(
        `--param ${info.params[i]} must be > 0 for ${dist}, got ${params[i]}`,
      );
    }
  };
  switch (dist) {
    case "deterministic":
    case "uniform":
    case "exponential":
    case "poisson":
    case "constant":
      positive(0);
      break;
    case "normal":
      positive(0);
      positive(1);
      break;
    case "pareto":
    case "gamma":
    case "weibull":
      positive(0);
      positive(1);
      break;
    case "cauchy":
      if (!(params[0] >= 0)) {
        throw new UsageError(`--param ${info.params[0]} must be ≥ 0 for cauchy, got ${params[0]}`);
      }
      positive(1);
      break;
  }
  return { name: dist, params };
}

/**
 * Describes a distribution for output, e.g. `exponential(λ=100/s)`; with unit
 * `B`, parameters are message sizes in bytes, e.g. `normal(μ=512 B, σ=64 B)`.
 */
export function describeDistribution(spec: DistributionSpec, unit: "s" | "B" = "s"): string {
  const p = spec.params, u = unit;
  const bytes = unit === "B";
  switch (spec.name) {
    case "deterministic":
      return bytes ? `constant(${p[0]} B)` : `deterministic(T=${p[0]} s)`;
    case "constant":
      return bytes ? `constant(${p[0]} B)` : `constant(rate=${p[0]}/s)`;
    case "exponential":
      return bytes ? `exponential(mean ${p[0]} B)` : `exponential(λ=${p[0]}/s)`;
    case "poisson":
      return bytes ? `poisson(mean ${p[0]} B)` : `poisson(mean=${p[0]} s, 1 ms steps)`;
    case "uniform":
      return `uniform(0, ${p[0]} ${u})`;
    case "normal":
      return `normal(μ=${p[0]} ${u}, σ=${p[1]} ${u})`;
    case "pareto":
      return `pareto(xm=${p[0]} ${u}, α=${p[1]})`;
    case "cauchy":
      return `cauchy(x0=${p[0]} ${u}, γ=${p[1]} ${u})`;
    case "gamma":
      return `gamma(k=${p[0]}, θ=${p[1]} ${u})`;
    case "weibull":
      return `weibull(k=${p[0]}, λ=${p[1]} ${u})`;
  }
}

// ---------------------------------------------------------------------------
// Random source

/** A seeded uniform random source on [0, 1). */
export interface Random {
  next(): number;
}

/**
 * xoshiro128** seeded through splitmix32: fast, 2^128 − 1 period, and the same
 * sequence on every machine for a given seed (Math.random cannot be seeded).
 */
export function seededRandom(seed: number): Random {
  let x = seed >>> 0;
  const split = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  if ((a | b | c | d) === 0) a = 1;
  return {
    next() {
      const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
      const t = (b << 9) >>> 0;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = rotl(d, 11);
      return result / 4294967296;
    },
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Seed for worker `worker` derived from a run seed, so each worker has its own stream. */
export function workerSeed(seed: number, worker: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) + Math.imul(worker + 1, 0x85ebca77)) >>> 0;
}

/** A random seed for runs without `--seed`. */
export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

// ---------------------------------------------------------------------------
// Sampling (milliseconds)

/** Returns a function that draws gaps in milliseconds from `spec` with `random`. */
export function sampler(spec: DistributionSpec, random: Random): () => number {
  const p = spec.params;
  // u in (0, 1): never 0, so logarithms stay finite.
  const open = () => {
    let u = random.next();
    while (u === 0) u = random.next();
    return u;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(open())) * Math.cos(2 * Math.PI * random.next());
  switch (spec.name) {
    case "deterministic":
      return () => p[0] * 1000;
    case "constant":
      return () => 1000 / p[0];
    case "uniform":
      return () => random.next() * p[0] * 1000;
    case "exponential":
      return () => (-Math.log(open()) / p[0]) * 1000;
    case "normal":
      return () => {
        for (;;) {
          const x = p[0] + p[1] * gauss();
          if (x >= 0) return x * 1000;
        }
      };
    case "pareto":
      return () => (p[0] / Math.pow(open(), 1 / p[1])) * 1000;
    case "cauchy":
      return () => {
        for (;;) {
          const x = p[0] + p[1] * Math.tan(Math.PI * (random.next() - 0.5));
          if (x >= 0 && Number.isFinite(x)) return x * 1000;
        }
      };
    case "gamma":
      return () => gammaDraw(p[0], open, gauss) * p[1] * 1000;
    case "weibull":
      return () => p[1] * Math.pow(-Math.log(open()), 1 / p[0]) * 1000;
    case "poisson":
      return () => poissonDraw(p[0] * 1000, open, gauss);
  }
}

// Marsaglia and Tsang's method; shape < 1 uses the boost x·U^(1/k).
function gammaDraw(k: number, open: () => number, gauss: () => number): number {
  if (k < 1) return gammaDraw(k + 1, open, gauss) * Math.pow(open(), 1 / k);
  const d = k - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number, v: number;
    do {
      x = gauss();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = open();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

// Knuth's product method for small means; a rounded normal for large ones (λ > 500),
// where the two differ by far less than the timer resolution.
function poissonDraw(lambda: number, open: () => number, gauss: () => number): number {
  if (lambda > 500) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * gauss()));
  const limit = Math.exp(-lambda);
  let k = 0;
  let product = open();
  while (product > limit) {
    k++;
    product *= open();
  }
  return k;
}

// ---------------------------------------------------------------------------
// Moments and CDF (milliseconds)

/** Mean and variance (ms, ms²) of the gaps `spec` draws; `NaN`/`Infinity` when undefined. */
export function moments(spec: DistributionSpec): { mean: number; variance: number } {
  const p = spec.params;
  switch (spec.name) {
    case "deterministic":
      return { mean: p[0] * 1000, variance: 0 };
    case "constant":
      return { mean: 1000 / p[0], variance: 0 };
    case "uniform":
      return { mean: (p[0] * 1000) / 2, variance: (p[0] * 1000) ** 2 / 12 };
    case "exponential":
      return { mean: 1000 / p[0], variance: (1000 / p[0]) ** 2 };
    case "normal": {
      // Truncated at 0: the moments of the normal restricted to [0, ∞).
      const mu = p[0] * 1000, sigma = p[1] * 1000;
      const alpha = -mu / sigma;
      const z = 1 - normalCdf(alpha);
      const lambda = normalPdf(alpha) / z;
      return {
        mean: mu + sigma * lambda,
        variance: sigma * sigma * (1 + alpha * lambda - lambda * lambda),
      };
    }
    case "pareto": {
      const xm = p[0] * 1000, a = p[1];
      return {
        mean: a > 1 ? (a * xm) / (a - 1) : Infinity,
        variance: a > 2 ? (xm * xm * a) / ((a - 1) ** 2 * (a - 2)) : Infinity,
      };
    }
    case "cauchy":
      return { mean: NaN, variance: NaN };
    case "gamma":
      return { mean: p[0] * p[1] * 1000, variance: p[0] * (p[1] * 1000) ** 2 };
    case "weibull": {
      const k = p[0], l = p[1] * 1000;
      const g1 = gammaFn(1 + 1 / k), g2 = gammaFn(1 + 2 / k);
      return { mean: l * g1, variance: l * l * (g2 - g1 * g1) };
    }
    case "poisson":
      return { mean: p[0] * 1000, variance: p[0] * 1000 };
  }
}

/** Whether the KS test applies (continuous distributions only). */
export function isContinuous(spec: DistributionSpec): boolean {
  return !DISTRIBUTIONS[spec.name].discrete;
}

/** CDF of the gaps in milliseconds (continuous distributions; step CDF for the others). */
export function cdf(spec: DistributionSpec): (ms: number) => number {
  const p = spec.params;
  switch (spec.name) {
    case "deterministic":
      return (x) => (x >= p[0] * 1000 ? 1 : 0);
    case "constant":
      return (x) => (x >= 1000 / p[0] ? 1 : 0);
    case "uniform":
      return (x) => Math.min(1, Math.max(0, x / (p[0] * 1000)));
    case "exponential":
      return (x) => (x <= 0 ? 0 : 1 - Math.exp((-x * p[0]) / 1000));
    case "normal": {
      const mu = p[0] * 1000, sigma = p[1] * 1000;
      const f0 = normalCdf(-mu / sigma);
      return (x) => (x <= 0 ? 0 : (normalCdf((x - mu) / sigma) - f0) / (1 - f0));
    }
    case "pareto":
      return (x) => (x < p[0] * 1000 ? 0 : 1 - Math.pow((p[0] * 1000) / x, p[1]));
    case "cauchy": {
      const x0 = p[0] * 1000, g = p[1] * 1000;
      const f = (x: number) => 0.5 + Math.atan((x - x0) / g) / Math.PI;
      const f0 = f(0);
      return (x) => (x <= 0 ? 0 : (f(x) - f0) / (1 - f0));
    }
    case "gamma":
      return (x) => (x <= 0 ? 0 : lowerRegularizedGamma(p[0], x / (p[1] * 1000)));
    case "weibull":
      return (x) => (x <= 0 ? 0 : 1 - Math.exp(-Math.pow(x / (p[1] * 1000), p[0])));
    case "poisson": {
      const lambda = p[0] * 1000;
      return (x) => (x < 0 ? 0 : 1 - lowerRegularizedGamma(Math.floor(x) + 1, lambda));
    }
  }
}
