/**
 * Per-flow reception statistics from the sequence numbers and send times that
 * messages carry: loss (with the lost sequence numbers), duplicates,
 * reordering, one-way delay and RFC 3550 interarrival jitter. Pure and bounded:
 * a flow keeps counters and at most `maxHoles` missing ranges, never a record
 * per message.
 *
 * @module
 */

/** Inclusive range of sequence numbers. */
export type SequenceRange = [number, number];

/** How one arrival relates to the ones before it. */
export type Arrival = "in-order" | "reordered" | "duplicate" | "late";

/** Limits of a {@linkcode SequenceTracker}. */
export interface TrackerLimits {
  /**
   * Missing ranges kept open for late arrivals to fill; beyond it the oldest
   * range is declared lost for good (a datagram filling it later counts as `late`).
   */
  maxHoles?: number;
  /** Lost ranges listed in reports; the count stays exact past it. */
  maxListed?: number;
}

/**
 * Tracks the sequence numbers of one flow. Sequences start at `start` (0 for
 * this tool's messages); a number above the highest seen opens a missing range
 * (a hole), a number inside a hole fills it (reordered), any other number
 * already seen is a duplicate.
 */
export class SequenceTracker {
  /** Highest sequence seen, or start − 1. */
  #max: number;
  // Open holes, ascending and disjoint: starts[i]..ends[i] inclusive.
  #starts: number[] = [];
  #ends: number[] = [];
  #closedLost = 0;
  #closedRanges: SequenceRange[] = [];
  /** Sequences below this were closed: arrivals there are late, not duplicates. */
  #closedBelow: number;
  readonly maxHoles: number;
  readonly maxListed: number;
  received = 0;
  duplicates = 0;
  reordered = 0;
  late = 0;

  constructor(start = 0, limits: TrackerLimits = {}) {
    this.#max = start - 1;
    this.#closedBelow = start;
    this.maxHoles = limits.maxHoles ?? 100_000;
    this.maxListed = limits.maxListed ?? 10_000;
  }

  /** Highest sequence seen (start − 1 before any). */
  get highest(): number {
    return this.#max;
  }

  /** Records one arrival and says what it was. */
  add(sequence: number): Arrival {
    if (sequence > this.#max) {
      if (sequence > this.#max + 1) {
        this.#starts.push(this.#max + 1);
        this.#ends.push(sequence - 1);
        if (this.#starts.length > this.maxHoles) this.#closeOldest();
      }
      this.#max = sequence;
      this.received++;
      return "in-order";
    }
    const i = this.#holeIndex(sequence);
    if (i >= 0) {
      const start = this.#starts[i], end = this.#ends[i];
      if (start === end) {
        this.#starts.splice(i, 1);
        this.#ends.splice(i, 1);
      } else if (sequence === start) this.#starts[i] = start + 1;
      else if (sequence === end) this.#ends[i] = end - 1;
      else {
        this.#ends[i] = sequence - 1;
        this.#starts.splice(i + 1, 0, sequence + 1);
        this.#ends.splice(i + 1, 0, end);
        if (this.#starts.length > this.maxHoles) this.#closeOldest();
      }
      this.received++;
      this.reordered++;
      return "reordered";
    }
    if (sequence < this.#closedBelow) {
      this.late++;
      return "late";
    }
    this.duplicates++;
    return "duplicate";
  }

  /** Sequences missing so far: between the start and the highest seen, never received. */
  get lost(): number {
    let open = 0;
    for (let i = 0; i < this.#starts.length; i++) open += this.#ends[i] - this.#starts[i] + 1;
    return this.#closedLost + open;
  }

  /** The lost ranges, ascending, at most `maxListed` of them. */
  lostRanges(): { ranges: SequenceRange[]; complete: boolean } {
    const ranges = this.#closedRanges.slice(0, this.maxListed);
    for (let i = 0; i < this.#starts.length && ranges.length < this.maxListed; i++) {
      ranges.push([this.#starts[i], this.#ends[i]]);
    }
    const total = this.#closedRangeCount + this.#starts.length;
    return { ranges, complete: ranges.length === total };
  }

  #closedRangeCount = 0;

  #closeOldest(): void {
    const start = this.#starts.shift()!, end = this.#ends.shift()!;
    this.#closedLost += end - start + 1;
    this.#closedRangeCount++;
    if (this.#closedRanges.length < this.maxListed) this.#closedRanges.push([start, end]);
    this.#closedBelow = end + 1;
  }

  /** Index of the open hole holding `sequence`, or −1. */
  #holeIndex(sequence: number): number {
    // Late arrivals usually fill the newest holes: look at the last one first.
    const n = this.#starts.length;
    if (n === 0) return -1;
    if (sequence >= this.#starts[n - 1]) return sequence <= this.#ends[n - 1] ? n - 1 : -1;
    let lo = 0, hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#starts[mid] <= sequence) lo = mid;
      else hi = mid - 1;
    }
    return this.#starts[lo] <= sequence && sequence <= this.#ends[lo] ? lo : -1;
  }
}

/**
 * RFC 3550 interarrival jitter: for consecutive arrivals i−1, i with send
 * times S and receive times R, D = (Ri − Ri−1) − (Si − Si−1) and
 * J += (|D| − J) / 16. Times in milliseconds.
 */
export class JitterEstimator {
  #lastSent = NaN;
  #lastReceived = NaN;
  jitter = 0;

  add(sentMs: number, receivedMs: number): number {
    if (!Number.isNaN(this.#lastSent)) {
      const d = (receivedMs - this.#lastReceived) - (sentMs - this.#lastSent);
      this.jitter += (Math.abs(d) - this.jitter) / 16;
    }
    this.#lastSent = sentMs;
    this.#lastReceived = receivedMs;
    return this.jitter;
  }
}

/** The first columns of every per-flow table (the `serve` text and `decode`). */
export const FLOW_COLUMNS = ["flow", "from", "messages", "bytes", "delay mean (ms)"];

/** One flow's report. */
export interface FlowReport {
  flow: number | null;
  remote: string;
  protocol: "tcp" | "udp";
  /** Connection number (TCP) or null (UDP). */
  connection: number | null;
  /** Messages received, duplicates included. */
  messages: number;
  bytes: number;
  /** Epoch ms of the first and last reception. */
  firstAt: number;
  lastAt: number;
  /** One-way delay (receive − carried send time), ms; null without send times. */
  delay: { min: number; mean: number; max: number } | null;
  /** RFC 3550 jitter at the end (ms); null without send times. */
  jitterMs: number | null;
  /** Highest sequence number seen. */
  highestSequence: number | null;
  lost: number;
  /** Lost sequence numbers as inclusive ranges (complete = not cut at the listing cap). */
  lostRanges: SequenceRange[];
  lostRangesComplete: boolean;
  duplicates: number;
  reordered: number;
  late: number;
}

/** Everything kept about one flow: counters, never per-message records. */
export class FlowStats {
  messages = 0;
  bytes = 0;
  firstAt = NaN;
  lastAt = NaN;
  #delaySum = 0;
  #delayCount = 0;
  #delayMin = Infinity;
  #delayMax = -Infinity;
  readonly jitter = new JitterEstimator();
  readonly sequences: SequenceTracker | null;

  constructor(
    readonly flow: number | null,
    readonly remote: string,
    readonly protocol: "tcp" | "udp",
    public connection: number | null,
    /** First sequence number (0 for this tool's messages); null: no sequence numbers. */
    start: number | null,
    limits: TrackerLimits = {},
  ) {
    this.sequences = start === null ? null : new SequenceTracker(start, limits);
  }

  /**
   * Records one message received at `receivedMs` (epoch ms). Returns the gap
   * since the previous reception of this flow (NaN for the first), the delay
   * (NaN without a send time) and how the sequence number arrived.
   */
  add(
    receivedMs: number,
    bytes: number,
    sequence: number | null,
    sentMs: number | null,
  ): { gapMs: number; delayMs: number; arrival: Arrival | null } {
    const gapMs = this.messages === 0 ? NaN : receivedMs - this.lastAt;
    if (this.messages === 0) this.firstAt = receivedMs;
    this.messages++;
    this.bytes += bytes;
    this.lastAt = receivedMs;
    let delayMs = NaN;
    if (sentMs !== null && Number.isFinite(sentMs)) {
      delayMs = receivedMs - sentMs;
      this.#delaySum += delayMs;
      this.#delayCount++;
      if (delayMs < this.#delayMin) this.#delayMin = delayMs;
      if (delayMs > this.#delayMax) this.#delayMax = delayMs;
      this.jitter.add(sentMs, receivedMs);
    }
    const arrival = sequence !== null && this.sequences ? this.sequences.add(sequence) : null;
    return { gapMs, delayMs, arrival };
  }

  /** The flow's report; times rounded to microseconds. */
  report(): FlowReport {
    const s = this.sequences;
    const lost = s?.lostRanges();
    const r = (x: number) => Math.round(x * 1000) / 1000;
    return {
      flow: this.flow,
      remote: this.remote,
      protocol: this.protocol,
      connection: this.connection,
      messages: this.messages,
      bytes: this.bytes,
      firstAt: r(this.firstAt),
      lastAt: r(this.lastAt),
      delay: this.#delayCount === 0 ? null : {
        min: r(this.#delayMin),
        mean: r(this.#delaySum / this.#delayCount),
        max: r(this.#delayMax),
      },
      jitterMs: this.#delayCount === 0 ? null : r(this.jitter.jitter),
      highestSequence: s ? s.highest : null,
      lost: s?.lost ?? 0,
      lostRanges: lost?.ranges ?? [],
      lostRangesComplete: lost?.complete ?? true,
      duplicates: s?.duplicates ?? 0,
      reordered: s?.reordered ?? 0,
      late: s?.late ?? 0,
    };
  }
}
