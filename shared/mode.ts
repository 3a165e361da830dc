/**
 * Execution modes shared by every tool, with the studies' spellings as aliases.
 *
 * @module
 */
import { UsageError } from "./errors.ts";

/** The four execution modes every tool runs its work in. */
export type Mode = "sequential" | "async" | "thread" | "process";

/** All modes, in the order tables list them. */
export const MODES: readonly Mode[] = ["sequential", "async", "thread", "process"];

/**
 * Accepted spellings for each mode: the canonical names plus the studies' words
 * (`single`, `iterative`, `iter`, `thr`, `proc`).
 */
export const MODE_ALIASES: Readonly<Record<string, Mode>> = {
  sequential: "sequential",
  seq: "sequential",
  single: "sequential",
  iterative: "sequential",
  iter: "sequential",
  async: "async",
  thread: "thread",
  threads: "thread",
  thr: "thread",
  process: "process",
  processes: "process",
  proc: "process",
};

/**
 * Parses a mode name or alias (case-insensitive).
 *
 * @throws {UsageError} naming the bad value and the accepted names.
 */
export function parseMode(text: string, option = "--mode"): Mode {
  const mode = MODE_ALIASES[text.trim().toLowerCase()];
  if (mode === undefined) {
    throw new UsageError(
      `Invalid ${option} '${text}': expected one of ${MODES.join(", ")} ` +
        `(aliases: single, iterative, iter, thr, proc)`,
    );
  }
  return mode;
}

/** Parses a comma-separated list of modes, keeping order and dropping repeats. */
export function parseModeList(text: string, option = "--modes"): Mode[] {
  const parts = text.split(",").map((part) => part.trim()).filter((part) => part !== "");
  if (parts.length === 0) throw new UsageError(`Invalid ${option} '${text}': the list is empty`);
  return [...new Set(parts.map((part) => parseMode(part, option)))];
}
