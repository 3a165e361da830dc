/**
 * Everything `taskserver`'s workers and children run: the connection handler of
 * the server (in pooled workers and children, or one per connection), the
 * FFI engine's pool worker, and the load generator's share (`taskserver load --workers`, the bench's delay table).
 * Worker and child entries load this module, nothing else, before they serve.
 *
 * @module
 */
import { defineRegistry } from "../shared/registry.ts";
import { taskConnection } from "./handler.ts";
import { loadService } from "./load_engine.ts";
import { ffiPoolService } from "./ffi_pool.ts";

/** The taskserver registry (see shared/registry.ts). */
export const registry = defineRegistry({
  handlers: { "taskserver.tasks": taskConnection },
  services: { "taskserver.load": loadService, "taskserver.ffi_pool": ffiPoolService },
});
