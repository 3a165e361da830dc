/**
 * Message sizes for `--size-dist`: D-ITG's distributions drawn in bytes.
 * Pure.
 *
 * @module
 */
import {
  describeDistribution,
  type DistributionSpec,
  sampler,
  seededRandom,
} from "./distributions.ts";
import { HEADER_SIZE } from "./protocol.ts";

/** Message size without `--size-dist`, bytes. */
export const DEFAULT_SIZE = 64;

/**
 * The spec that draws message sizes in bytes for `--size-dist`: the same
 * distributions with sizes where `--dist` takes seconds (bytes in place of
 * seconds), except that `exponential` takes its mean size in bytes and
 * `constant` its size in bytes. Its samples, moments and CDF come out in bytes.
 */
export function sizeSpec(spec: DistributionSpec): DistributionSpec {
  const p = spec.params;
  switch (spec.name) {
    case "exponential":
    case "constant":
      return { name: spec.name, params: [1000 / p[0]] };
    case "pareto":
    case "cauchy":
    case "normal":
    case "deterministic":
    case "uniform":
    case "poisson":
      return {
        name: spec.name,
        params: spec.name === "pareto" ? [p[0] / 1000, p[1]] : p.map((x) => x / 1000),
      };
    case "gamma":
    case "weibull":
      return { name: spec.name, params: [p[0], p[1] / 1000] };
  }
}

/** Describes a size distribution (parameters in bytes), e.g. `normal(μ=512 B, σ=64 B)`. */
export function describeSizes(spec: DistributionSpec): string {
  return describeDistribution(spec, "B");
}

/** Draws message sizes in bytes, clamped to `[HEADER_SIZE, max]`. */
export function sizeDrawer(
  spec: DistributionSpec | null | undefined,
  seed: number,
  max: number,
): () => number {
  if (!spec) return () => Math.max(HEADER_SIZE, Math.min(max, DEFAULT_SIZE));
  const draw = sampler(sizeSpec(spec), seededRandom(seed ^ 0x2545f491));
  return () => Math.max(HEADER_SIZE, Math.min(max, Math.round(draw())));
}
