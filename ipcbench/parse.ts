/**
 * Parsers of ipcbench's list flags; errors name the bad value.
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";
import { MAX_SIZE, MIN_SIZE } from "./message.ts";
import { type Pin, PINS } from "./system.ts";

/** Parses `--sizes` (bytes; `k` and `m` suffixes are KiB and MiB); the error names the bad value. */
export function parseSizes(text: string): number[] {
  const parts = text.split(",").map((part) => part.trim()).filter((part) => part !== "");
  if (parts.length === 0) throw new UsageError(`Invalid --sizes '${text}': the list is empty`);
  return [
    ...new Set(parts.map((part) => {
      const match = /^(\d+)([kKmM]?)$/.exec(part);
      const size = match
        ? Number(match[1]) * (match[2] === "" ? 1 : /k/i.test(match[2]) ? 1024 : 1 << 20)
        : NaN;
      if (!Number.isSafeInteger(size) || size < MIN_SIZE || size > MAX_SIZE) {
        throw new UsageError(
          `Invalid --sizes '${part}': expected a byte count from ${MIN_SIZE} to ${MAX_SIZE} ` +
            `(64 MiB; the counter takes 4 bytes)`,
        );
      }
      return size;
    })),
  ];
}

/** Parses `--pin` (one of same, split, none, a comma list, or `all`). */
export function parsePins(text: string): Pin[] {
  const parts = text.split(",").map((part) => part.trim().toLowerCase()).filter((p) => p !== "");
  if (parts.includes("all")) return [...PINS];
  if (parts.length === 0 || parts.some((part) => !(PINS as readonly string[]).includes(part))) {
    throw new UsageError(`Invalid --pin '${text}': expected same, split, none, a list, or all`);
  }
  return [...new Set(parts)] as Pin[];
}
