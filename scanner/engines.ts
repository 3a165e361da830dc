/**
 * The two connect engines and how a scan picks one: `ffi` (libc non-blocking
 * connects through `Deno.dlopen`, thousands in flight per isolate) and `connect`
 * (`Deno.connect`, portable, ~128 in flight per isolate). `auto` takes `ffi`
 * where FFI is permitted on Linux, else `connect`. (`ffi` starts sooner even for
 * one port: the `connect` engine's timers are the global `setTimeout`, which in
 * Deno 2.8+ loads Node's timers on first use, costlier than opening libc.) Both give identical states
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

/** Resolves `--engine`; `ffi` where it cannot run is a usage error naming why. */
export function resolveEngine(requested: string): EngineName {
  const choice = requested.trim().toLowerCase();
  if (!(ENGINE_CHOICES as readonly string[]).includes(choice)) {
    throw new UsageError(`Invalid --engine '${requested}': use auto, ffi or connect`);
  }
  const reason = ffiUnavailableReason();
  if (choice === "ffi" && reason !== null) {
    throw new UsageError(`Cannot use --engine ffi: ${reason}; or use --engine connect`);
  }
  if (choice === "auto") return reason === null ? "ffi" : "connect";
  return choice as EngineName;
}
