/**
 * The two connect engines and how a scan picks one: `ffi` (libc non-blocking
 * connects through `Deno.dlopen`, thousands in flight per isolate) and `connect`
 * (`Deno.connect`, portable, ~128 in flight per isolate). `auto` takes `ffi`
 * where FFI is permitted on Linux, else `connect`. Both give identical states
 * and reasons.
 *
 * The FFI engine runs in workers and children as the task `scanner.ffiChunk`
 * (a chunk of probes per task; the isolate's one engine serves every chunk it
 * is given), registered here because the entry imports this module.
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";
import { defineTask } from "../shared/runner.ts";
import { ffiEngine } from "./ffi_engine.ts";
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

/** Input of one FFI chunk task. */
export interface FfiChunkInput {
  hosts: { address: string; family: 4 | 6 }[];
  hostOf: number[];
  ports: number[];
  timeoutMs: number;
  retries: number;
  /** New connects per second for this isolate (0: unlimited). */
  rate: number;
  /** Most sockets this isolate's engine keeps open. */
  window: number;
  minRttMs?: number;
  maxRttMs?: number;
}

/** Outcome codes of a chunk, one character per probe (`String.fromCharCode(48 + code)`). */
export type FfiChunkOutput = string;

/** Encodes outcome codes compactly for the worker channel (JSON for children). */
export function encodeCodes(codes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < codes.length; i += 4096) {
    text += String.fromCharCode(...Array.from(codes.subarray(i, i + 4096), (c) => 48 + c));
  }
  return text;
}

/** Decodes {@linkcode encodeCodes}. */
export function decodeCodes(text: string): Uint8Array {
  const codes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) codes[i] = text.charCodeAt(i) - 48;
  return codes;
}

/** A chunk of probes through the isolate's FFI engine. */
export const ffiChunkTask = defineTask<FfiChunkInput, FfiChunkOutput>(
  "scanner.ffiChunk",
  async (input, context) => {
    const engine = ffiEngine();
    engine.capWindow(input.window);
    engine.setRate(input.rate);
    const results = await engine.scan(input, {
      timeoutMs: input.timeoutMs,
      retries: input.retries,
      minRttMs: input.minRttMs,
      maxRttMs: input.maxRttMs,
      signal: context.signal,
    });
    return encodeCodes(results.codes);
  },
);
