/**
 * Light worker and child entry from source: it loads only the registry (the
 * connection handler and the load generator's service), so a worker or child
 * per client starts without loading the command line, the benchmark or the
 * report libraries. (A bundle is its own entry.)
 *
 * @module
 */
import { serveRegistry } from "../shared/registry.ts";
import { registry } from "./registry.ts";

serveRegistry(registry);
