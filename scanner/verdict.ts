/**
 * What one connect attempt's outcome means for a port, shared by both engines so
 * they report identical states and reasons, and the attempt schedule that gives
 * `--timeout` and `--retries` the same meaning in both.
 *
 * Schedule (per port, `T` = timeout, `r` = retries, `step = T / (r + 1)`):
 * attempt 0 starts at once; attempt k starts `step` after attempt k-1 when the
 * port has not answered yet, or at once when every started attempt has ended
 * with an ICMP error. Attempts overlap: an answer to any of them decides the
 * port. A port that never answers is `filtered` when its deadline passes: the
 * start of its last attempt plus that attempt's share of `T` (exactly `T` after
 * the first attempt when no attempt had to wait for a descriptor). So a filtered
 * port costs one timeout, not `r + 1` of them, and a SYN lost in a burst is
 * resent after `step`.
 *
 * @module
 */
/** Port states, as nmap names them. */
export type PortState = "open" | "closed" | "filtered";

/** All port states, in the order tables list them. */
export const PORT_STATES: readonly PortState[] = ["open", "closed", "filtered"];

/** A final or per-attempt verdict. */
export interface Verdict {
  state: PortState;
  reason: string;
  /** `true`: the port is decided; `false`: only this attempt ended (an ICMP error). */
  final: boolean;
  /** Index in {@linkcode OUTCOMES} (compact results: one byte a port). */
  code: number;
}

/** Every (state, reason) a port can end with; a result's code is its index (0: none yet). */
export const OUTCOMES: readonly { state: PortState; reason: string }[] = [
  { state: "filtered", reason: "(none)" },
  { state: "open", reason: "syn-ack" },
  { state: "closed", reason: "conn-refused" },
  { state: "closed", reason: "reset" },
  { state: "closed", reason: "self-connect" },
  { state: "filtered", reason: "no-response" },
  { state: "filtered", reason: "host-unreach" },
  { state: "filtered", reason: "net-unreach" },
  { state: "filtered", reason: "admin-prohibited" },
  { state: "filtered", reason: "no-response (cpu-starved)" },
];

/** The code of a (state, reason) pair in {@linkcode OUTCOMES}. */
export function outcomeCode(state: PortState, reason: string): number {
  const code = OUTCOMES.findIndex((o) => o.state === state && o.reason === reason);
  if (code <= 0) throw new Error(`internal error: no outcome code for ${state}/${reason}`);
  return code;
}

function verdict(state: PortState, reason: string, final: boolean): Verdict {
  return { state, reason, final, code: outcomeCode(state, reason) };
}

/** The verdict of a port that never answered. */
export const NO_RESPONSE: Verdict = verdict("filtered", "no-response", true);

/** The errno is the process running out of descriptors or local ports: retry, never report. */
export function isExhaustedErrno(errno: number): boolean {
  // EMFILE, ENFILE, EADDRNOTAVAIL, ENOBUFS, EAGAIN (no local port on some kernels).
  return errno === 24 || errno === 23 || errno === 99 || errno === 105 || errno === 11;
}

const VERDICTS = new Map<number, Verdict>([
  [111, verdict("closed", "conn-refused", true)],
  [104, verdict("closed", "reset", true)],
  // A connect that found its socket closed without an error (torn down by a reset).
  [103, verdict("closed", "reset", true)],
  [110, verdict("filtered", "no-response", false)],
  [113, verdict("filtered", "host-unreach", false)],
  [101, verdict("filtered", "net-unreach", false)],
  [1, verdict("filtered", "admin-prohibited", false)],
  [13, verdict("filtered", "admin-prohibited", false)],
]);

/** The verdict for a connect that failed with `errno`; `null` when it is no port state. */
export function verdictForErrno(errno: number): Verdict | null {
  return VERDICTS.get(errno) ?? null;
}

/** A completed handshake: `open`, or `closed` when the socket connected to itself. */
export function connectedVerdict(selfConnect: boolean): Verdict {
  return selfConnect ? SELF_CONNECT : OPEN;
}

const OPEN = verdict("open", "syn-ack", true);
const SELF_CONNECT = verdict("closed", "self-connect", true);

/** Milliseconds between attempts of one port. */
export function attemptStep(timeoutMs: number, retries: number): number {
  return timeoutMs / (retries + 1);
}

/**
 * The deadline a port has once attempt `k` (0-based) starts at `now`: that
 * attempt's start plus the share of the timeout left to it and the ones after.
 */
export function deadlineAfterAttempt(
  previous: number,
  now: number,
  k: number,
  timeoutMs: number,
  retries: number,
): number {
  return Math.max(previous, now + (retries + 1 - k) * attemptStep(timeoutMs, retries));
}

/** errno of a Deno error message (`... (os error 111)`), or `null`. */
export function errnoOf(error: unknown): number | null {
  const message = error instanceof Error ? error.message : String(error);
  const match = /os error (\d+)\)?\s*$/.exec(message) ?? /os error (\d+)\b/.exec(message);
  return match ? Number(match[1]) : null;
}
