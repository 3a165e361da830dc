/**
 * The FFI engine in a `thread` or `process` pool: each pooled worker runs
 * this service (see `ServeOptions.poolService` in shared/server.ts) instead of
 * the `Deno.Conn` accept loop. It joins the pool's port with its own libc
 * listeners (SO_REUSEPORT: the kernel spreads connections over every worker's
 * listeners), serves with {@linkcode FfiTaskServer}, reports refusals to the
 * parent in batches and stops when the parent ends its channel.
 *
 * @module
 */
import type { Service } from "../shared/runtime.ts";
import { DEFAULT_MAX_CONNECTIONS, DENO_LISTEN_BACKLOG } from "../shared/server.ts";
import { FfiTaskServer } from "./ffi_server.ts";
import type { TaskServerInit } from "./protocol.ts";

/** What the pool's parent sends each worker (see `servePool` in shared/server.ts). */
interface PoolInit {
  hostname: string;
  port: number;
  init: TaskServerInit;
  graceMs: number;
  /** The worker's share of the backlog, in Deno listeners of 511 slots. */
  listeners?: number;
  maxConnections?: number;
  refusal?: string;
}

/** Pool worker on the FFI engine: listens, serves, stops when the channel ends. */
export const ffiPoolService: Service = async (channel, init) => {
  const options = init as PoolInit;
  // Refusals reach the parent at most every 100 ms, as one count.
  let refused = 0;
  const report = () => {
    if (refused > 0) channel.send({ refused });
    refused = 0;
  };
  const server = FfiTaskServer.start({
    hostname: options.hostname,
    port: options.port,
    init: options.init,
    backlog: (options.listeners ?? 1) * DENO_LISTEN_BACKLOG,
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    refusal: options.refusal ?? "",
    graceMs: options.graceMs,
    onRefuse: () => {
      if (refused++ === 0) setTimeout(report, 100);
    },
    join: true,
  });
  channel.send({ listening: true });
  while ((await channel.receive()) !== null);
  await server.close();
  report();
  return null;
};
