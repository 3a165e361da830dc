/**
 * Adaptive timing, as nmap does it: per host, a smoothed round-trip time and its
 * variation from the answers already received (RFC 6298 gains), and a timeout of
 * `srtt + 4 × rttvar` kept within `[minRtt, maxRtt]`; before the first answer
 * the initial timeout (`--timeout`). Answers are timed from the connect to the
 * moment this isolate sees them, so an isolate slow to read (CPU load) gets
 * longer timeouts too. `-T0`…`-T5` name documented settings.
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";

/** Bounds of the adaptive timeout; `undefined` fields: a fixed timeout. */
export interface RttBounds {
  /** Timeout before the host has answered anything (`--timeout`). */
  initialMs: number;
  minMs?: number;
  maxMs?: number;
}

/** One host's round-trip estimate. */
export class RttEstimate {
  #srtt = -1;
  #rttvar = 0;

  /** Adds the round trip of one answer. */
  sample(ms: number): void {
    if (this.#srtt < 0) {
      this.#srtt = ms;
      this.#rttvar = ms / 2;
      return;
    }
    const delta = ms - this.#srtt;
    this.#srtt += delta / 8;
    this.#rttvar += (Math.abs(delta) - this.#rttvar) / 4;
  }

  /** The timeout for a new attempt. */
  timeout(bounds: RttBounds): number {
    if (this.#srtt < 0 || bounds.minMs === undefined || bounds.maxMs === undefined) {
      return bounds.initialMs;
    }
    return Math.min(bounds.maxMs, Math.max(bounds.minMs, this.#srtt + 4 * this.#rttvar));
  }
}

/** Per-address estimates of one isolate. */
export class HostRtts {
  #hosts = new Map<string, RttEstimate>();
  get(address: string): RttEstimate {
    let estimate = this.#hosts.get(address);
    if (!estimate) {
      estimate = new RttEstimate();
      this.#hosts.set(address, estimate);
    }
    return estimate;
  }
}

/** What a `-T` preset sets (explicit options win). */
export interface TimingPreset {
  name: string;
  timeout: number;
  minRtt: number;
  maxRtt: number;
  retries: number;
  /** Connects per second (0: unlimited). */
  rate: number;
  /** Probes in flight (undefined: the engine's default). */
  concurrency?: number;
}

// The defaults live in limits.ts (a plain scan's start loads that module, not this one).
export { DEFAULT_MAX_RTT_MS, DEFAULT_MIN_RTT_MS } from "./limits.ts";

/**
 * `-T0`…`-T5`, after nmap's templates: T0-T2 probe one port at a time with
 * nmap's scan delays (5 min, 15 s, 0.4 s); T3 is the default; T4 and T5 cap the
 * timeout lower (nmap: max-rtt 1250 ms / 300 ms, initial 500 / 250 ms).
 */
export const TIMING_PRESETS: readonly TimingPreset[] = [
  {
    name: "paranoid",
    timeout: 5000,
    minRtt: 100,
    maxRtt: 10_000,
    retries: 10,
    rate: 1 / 300,
    concurrency: 1,
  },
  {
    name: "sneaky",
    timeout: 5000,
    minRtt: 100,
    maxRtt: 10_000,
    retries: 10,
    rate: 1 / 15,
    concurrency: 1,
  },
  {
    name: "polite",
    timeout: 1000,
    minRtt: 100,
    maxRtt: 10_000,
    retries: 10,
    rate: 2.5,
    concurrency: 1,
  },
  { name: "normal", timeout: 500, minRtt: 100, maxRtt: 10_000, retries: 1, rate: 0 },
  { name: "aggressive", timeout: 500, minRtt: 100, maxRtt: 1250, retries: 1, rate: 0 },
  { name: "insane", timeout: 250, minRtt: 50, maxRtt: 300, retries: 0, rate: 0 },
];

/** Parses `-T`: 0-5 or a preset name. */
export function parseTiming(text: string): TimingPreset {
  const value = text.trim().toLowerCase();
  const preset = /^[0-5]$/.test(value)
    ? TIMING_PRESETS[Number(value)]
    : TIMING_PRESETS.find((p) => p.name === value);
  if (!preset) {
    throw new UsageError(
      `Invalid -T '${text}': use 0-5 or ${TIMING_PRESETS.map((p) => p.name).join(", ")}`,
    );
  }
  return preset;
}
