/**
 * Everything `scanner`'s workers and children run: the `connect` engine's probe
 * and the FFI engine's chunk. The entry (`main.ts`) loads this module only in
 * the worker or child role, and `scan.ts` only when it runs tasks through the
 * shared runner, so a plain scan starts without the execution machinery.
 *
 * @module
 */
import { defineRegistry } from "../shared/registry.ts";
import { type ProbeInput, probePort } from "./probe.ts";
import { ffiChunk, type FfiChunkInput } from "./ffi_chunk.ts";

/** The scanner's registry (see shared/registry.ts). */
export const registry = defineRegistry({
  tasks: {
    "scanner.probe": (input: ProbeInput) => probePort(input),
    "scanner.ffiChunk": (input: FfiChunkInput, context) => ffiChunk(input, context),
  },
});
