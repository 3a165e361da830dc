/**
 * The two connect engines and how a scan picks one: `ffi` (libc non-blocking
 * connects through `Deno.dlopen`, thousands in flight per isolate) and `connect`
 * (`Deno.connect`, portable, ~128 in flight per isolate). `auto` takes `ffi`
 * where FFI is permitted on Linux, else `connect` (and `connect` for a handful
 * of probes, see {@linkcode AUTO_CONNECT_MAX_PROBES}). Both give identical states
 * and reasons.
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";
import { ffiUnavailableReason } from "./libc.ts";

/** The engines. */
export type EngineName = "ffi" | "connect";
/** What `--engine` accepts. */
export const ENGINE_CHOICES = ["auto", "ffi", "connect"] as const;

/**
 * Scans of at most this many probes take `connect` under `auto` even where `ffi`
 * can run: opening libc through `Deno.dlopen` costs a few milliseconds, more than
 * the FFI engine saves on so few connects (a one-port scan starts and exits
 * sooner without it). Both engines give the same states and reasons.
 */
export const AUTO_CONNECT_MAX_PROBES = 16;

/**
 * Resolves `--engine` for a scan of `probes` probes (unknown: any number);
 * `ffi` where it cannot run is a usage error naming why.
 */
export function resolveEngine(requested: string, probes = Infinity): EngineName {
  const choice = requested.trim().toLowerCase();
  if (!(ENGINE_CHOICES as readonly string[]).includes(choice)) {
    throw new UsageError(`Invalid --engine '${requested}': use auto, ffi or connect`);
  }
  const reason = ffiUnavailableReason();
  if (choice === "ffi" && reason !== null) {
    throw new UsageError(`Cannot use --engine ffi: ${reason}; or use --engine connect`);
  }
  if (choice === "auto") {
    return reason === null && probes > AUTO_CONNECT_MAX_PROBES ? "ffi" : "connect";
  }
  return choice as EngineName;
}
