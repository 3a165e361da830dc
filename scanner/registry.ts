/**
 * Everything `scanner`'s workers and children run: the probe task and the FFI engine's chunk task. The entry
 * (`main.ts`) loads only this module before deciding its role, so a worker
 * starts without the command line.
 *
 * @module
 */
import { defineRegistry } from "../shared/registry.ts";
import { probeTask } from "./probe.ts";
import { ffiChunkTask } from "./engines.ts";

/** The scanner's registry (see shared/registry.ts). */
export const registry = defineRegistry({
  tasks: { [probeTask.name]: probeTask.fn, [ffiChunkTask.name]: ffiChunkTask.fn },
});
