/**
 * The child channel before and after: the runtime's parent–child channel over
 * each kind (pipes = before), and the thread channel (postMessage = before,
 * SharedArrayBuffer rings = after), next to the targets
 * measured in the same run (C pipes at the same placement and size, and the
 * study's Python `multiprocessing.Queue` ping-pong pinned alike).
 *
 * @module
 */
import type { ReportTable } from "../shared/report.ts";
import type { BenchCase } from "./bench.ts";

const ROWS = ["pipes", "channel-unix", "channel-shm", "postmessage", "channel-sab"] as const;

function r2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** One row per channel kind (child and thread) per placement and size. */
export function channelTable(cases: BenchCase[]): ReportTable {
  const rows: (string | number | null)[][] = [];
  const groups = new Map<string, BenchCase[]>();
  for (const c of cases) {
    if (!(ROWS as readonly string[]).includes(c.transport)) continue;
    const key = `${c.pin} ${c.size}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  for (const group of groups.values()) {
    const before = group.find((c) => c.transport === "pipes");
    const threadBefore = group.find((c) => c.transport === "postmessage");
    // C pipes and the Python queue, from the pipes case (the same for every row).
    const cPipes = before?.anchor?.roundTripsPerSec ?? null;
    const queue = group.find((c) => c.pythonQueue)?.pythonQueue?.roundTripsPerSec ?? null;
    for (const name of ROWS) {
      const c = group.find((x) => x.transport === name);
      if (!c) continue;
      const rate = c.median.roundTripsPerSec;
      const was = name === "channel-sab" ? threadBefore : name === "postmessage" ? c : before;
      rows.push([
        name === "pipes" || name === "postmessage" ? `${name} (before)` : name,
        c.channel ?? "thread",
        c.pin,
        c.size,
        rate,
        c.allRunsUs.p50,
        c.allRunsUs.p999,
        was ? r2(rate / was.median.roundTripsPerSec) : null,
        queue ? r2(rate / queue) : null,
        cPipes ? r2(cPipes / rate) : null,
      ]);
    }
  }
  return {
    title:
      "The child channel before (pipes) and after, and the thread channel before (postMessage) " +
      "and after (SharedArrayBuffer rings), against the targets measured in the same run " +
      "(≥ 1.5× the Python Queue's rt/s; within 2× C pipes)",
    columns: [
      "channel",
      "kind that ran",
      "pin",
      "size (B)",
      "rt/s",
      "p50 µs",
      "p99.9 µs",
      "× before",
      "× Py Queue",
      "C pipes ÷ this",
    ],
    rows,
  };
}

/** One sentence on the child channel, from the measured cases (or none without them). */
export function channelFinding(cases: BenchCase[]): string[] {
  const small = cases.filter((c) => c.size <= 64);
  const before = small.find((c) => c.transport === "pipes");
  if (!before) return [];
  const pick = (t: string) => small.find((c) => c.transport === t && c.pin === before.pin);
  const after = [pick("channel-shm"), pick("channel-unix")].filter((c) => c !== undefined);
  if (after.length === 0) return [];
  const best = after.reduce((
    a,
    b,
  ) => (a.median.roundTripsPerSec >= b.median.roundTripsPerSec ? a : b));
  const queue = before.pythonQueue?.roundTripsPerSec;
  const cPipes = before.anchor?.roundTripsPerSec;
  return [
    `The child channel of every tool's process mode: over pipes (before) ${before.median.roundTripsPerSec} ` +
    `round trips/s at ${before.size} B (pin ${before.pin}); over ${
      best.channel ?? best.transport
    } ` +
    `${best.median.roundTripsPerSec}/s (${
      r2(best.median.roundTripsPerSec / before.median.roundTripsPerSec)
    }× ` +
    `before)` +
    (queue ? `, ${r2(best.median.roundTripsPerSec / queue)}× the Python Queue's ${queue}/s` : "") +
    (cPipes ? `, and C pipes do ${r2(cPipes / best.median.roundTripsPerSec)}× as many` : "") +
    ` in the same run.`,
    ...threadFinding(pick("postmessage"), pick("channel-sab"), cPipes),
  ];
}

function threadFinding(
  was: BenchCase | undefined,
  now: BenchCase | undefined,
  cPipes: number | undefined,
): string[] {
  if (!was || !now) return [];
  const rate = now.median.roundTripsPerSec;
  return [
    `The thread channel of every tool's thread mode: over postMessage (before) ` +
    `${was.median.roundTripsPerSec} round trips/s; over SharedArrayBuffer rings ${rate}/s ` +
    `(${r2(rate / was.median.roundTripsPerSec)}× before)` +
    (cPipes ? `, and C pipes do ${r2(cPipes / rate)}× as many` : "") + ` in the same run.`,
  ];
}
