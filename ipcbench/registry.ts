/**
 * Everything ipcbench's workers and children run: the echo side of every
 * transport, the measuring worker of `messagechannel` and the receiving child of
 * `stream`. The entry (`main.ts`) loads only this module before deciding its
 * role, so a worker or child starts without the command line, tables or plots.
 *
 * @module
 */
import { defineRegistry } from "../shared/registry.ts";
import { echoService } from "./transports.ts";
import { pingerService } from "./measure.ts";
import { sinkService } from "./stream.ts";

/** ipcbench's registry (see shared/registry.ts). */
export const registry = defineRegistry({
  services: {
    "ipcbench.echo": echoService,
    "ipcbench.pinger": pingerService,
    "ipcbench.sink": sinkService,
  },
});
