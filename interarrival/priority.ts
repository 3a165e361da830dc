/**
 * A sender thread's CPU priority (Linux, `--allow-ffi`). Profiling the
 * 100 × 1,000 msg/s run showed where late sends come from: each sender thread
 * waited 0.4–1.8 s of a 5 s run in the kernel's run queue (schedstat) behind
 * the receiver and everything else on the 2 cores, while its own sends took
 * 0.2–0.5 ms per wake-up. So a sender may ask for its thread (only the calling
 * thread, as ITGSend's `-P`):
 *
 * - `realtime`: SCHED_FIFO (priority 10): woken for a deadline, it preempts any
 *   ordinary thread at once (run-queue wait ~0). Falls back to `high` where
 *   refused.
 * - `high`: nice −20 (ordinary scheduling, far more weight).
 * - `normal`: unchanged.
 *
 * `realtime` and `high` also set the thread's timer slack to 1 ns, so that its
 * timed futex waits end on time rather than up to 50 µs late. Both need
 * CAP_SYS_NICE (root) or raised RLIMIT_RTPRIO/RLIMIT_NICE; where refused, the
 * thread keeps its settings and the outcome says what it ran at. A sender that
 * falls behind for long gives up the priority (see sender.ts), so a
 * real-time thread never holds a core for more than a moment.
 *
 * @module
 */
import { fastLibc } from "./libc.ts";

/** The priority a sender asks for its thread. */
export type SenderPriority = "realtime" | "high" | "normal";

/** What a sender thread ran at. */
export interface PriorityOutcome {
  requested: SenderPriority;
  /** `fifo`: SCHED_FIFO; `other`: ordinary scheduling (null where unknown). */
  policy: "fifo" | "other" | null;
  /** The thread's nice value (null where it cannot be read). */
  nice: number | null;
  /** Set when the sender fell behind for long and dropped the raised priority. */
  dropped?: boolean;
}

/** A priority in force on the calling thread, and the way back. */
export interface AppliedPriority {
  outcome: PriorityOutcome;
  /** Gives the thread back its earlier settings (also when the sender falls behind). */
  restore(): void;
}

const PRIO_PROCESS = 0;
const PR_SET_TIMERSLACK = 29;
const PR_GET_TIMERSLACK = 30;
const SCHED_OTHER = 0;
const SCHED_FIFO = 1;
const FIFO_PRIORITY = 10;
const HIGH_NICE = -20;

/** Applies `priority` to the calling thread (a Web Worker's own thread). */
export function applySenderPriority(priority: SenderPriority): AppliedPriority {
  const c = fastLibc();
  const outcome: PriorityOutcome = { requested: priority, policy: null, nice: null };
  if (!c) return { outcome, restore() {} };
  const tid = c.gettid();
  const nice = c.getpriority(PRIO_PROCESS, tid);
  const slack = c.prctl(PR_GET_TIMERSLACK, 0n, 0n, 0n, 0n);
  let raised = false;
  if (priority !== "normal") {
    const fifo = priority === "realtime" &&
      c.sched_setscheduler(tid, SCHED_FIFO, new Int32Array([FIFO_PRIORITY])) === 0;
    if (!fifo) c.setpriority(PRIO_PROCESS, tid, HIGH_NICE);
    c.prctl(PR_SET_TIMERSLACK, 1n, 0n, 0n, 0n);
    raised = true;
  }
  const read = () => {
    outcome.policy = c.sched_getscheduler(tid) === SCHED_FIFO ? "fifo" : "other";
    outcome.nice = c.getpriority(PRIO_PROCESS, tid);
  };
  read();
  return {
    outcome,
    // A pooled Web Worker may run other tasks afterwards: they get the thread's old settings.
    restore() {
      if (!raised) return;
      raised = false;
      c.sched_setscheduler(tid, SCHED_OTHER, new Int32Array([0]));
      c.setpriority(PRIO_PROCESS, tid, nice);
      if (slack > 0) c.prctl(PR_SET_TIMERSLACK, BigInt(slack), 0n, 0n, 0n);
    },
  };
}

/** What the sending threads ran at, in words (`SCHED_FIFO`, `nice -20`, ...), one per outcome kind. */
export function describePriority(outcomes: PriorityOutcome[]): string {
  const words = outcomes.map((o) => {
    const ran = o.policy === "fifo"
      ? "SCHED_FIFO"
      : o.nice === null
      ? "unknown priority"
      : `nice ${o.nice}`;
    return `${ran} (asked ${o.requested}${o.dropped ? "; dropped when behind" : ""})`;
  });
  return [...new Set(words)].join(", ");
}
