/**
 * The FFI engine in workers and children: a chunk of probes per task (the task
 * `scanner.ffiChunk` of `registry.ts`); the isolate's one engine serves every
 * chunk it is given. Outcome codes travel back as one character per probe.
 *
 * @module
 */
import type { TaskContext } from "../shared/runner.ts";
import { ffiEngine } from "./ffi_engine.ts";

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

/** Probes a chunk through the isolate's FFI engine. */
export async function ffiChunk(
  input: FfiChunkInput,
  context: Pick<TaskContext, "signal">,
): Promise<FfiChunkOutput> {
  const engine = ffiEngine(input.window);
  engine.setRate(input.rate);
  const results = await engine.scan(input, {
    timeoutMs: input.timeoutMs,
    retries: input.retries,
    minRttMs: input.minRttMs,
    maxRttMs: input.maxRttMs,
    signal: context.signal,
  });
  return encodeCodes(results.codes);
}
