/**
 * Light worker and child entry from source: it registers only the connection
 * handler and the load generator's task, so a worker or child per client starts
 * without loading the command line, the benchmark or the report libraries. (A
 * bundle is its own entry.)
 *
 * @module
 */
import "./protocol.ts";
import "./load_engine.ts";
import { enterRole } from "../shared/runtime.ts";

enterRole();
