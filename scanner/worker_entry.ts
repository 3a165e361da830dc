/**
 * A light worker and child entry: registers the scanner's tasks (`scanner.probe`,
 * `scanner.ffiChunk`) and serves the parent, without the command line. Tests
 * pass it as `entry` so that `deno test`, which type-checks a worker's module
 * graph when the worker starts, checks a few small modules rather than the whole
 * tool (the command line, the bench and its plots): on a loaded machine that
 * check alone outlasted the runtime's 30 s worker start limit.
 *
 * @module
 */
import { enterRole } from "../shared/runtime.ts";
import "./probe.ts";
import "./engines.ts";

if (import.meta.main) enterRole();
