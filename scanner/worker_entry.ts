/**
 * A light worker and child entry: loads the scanner's registry (`scanner.probe`,
 * `scanner.ffiChunk`) and serves the parent, without the command line. Tests
 * pass it as `entry` and import it statically, so that `deno test`, which
 * type-checks a worker's module graph when the worker starts, finds that check
 * done: on a loaded machine a cold check alone outlasted the runtime's 30 s
 * worker start limit.
 *
 * @module
 */
import { serveRegistry } from "../shared/registry.ts";
import { registry } from "./registry.ts";

if (import.meta.main) serveRegistry(registry);
