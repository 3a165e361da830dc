/**
 * A light worker and child entry: loads the registry and serves the parent,
 * without even the dynamic import of the command line that main.ts holds. Tests
 * pass it as `entry`, since `deno test` type-checks a worker's module graph
 * (dynamic imports included) when the worker starts, and on a loaded machine
 * checking the whole tool outlasted the runtime's worker start limit.
 *
 * @module
 */
import { serveRegistry } from "../shared/registry.ts";
import { registry } from "./registry.ts";

if (import.meta.main) serveRegistry(registry);
