/**
 * Everything `interarrival`'s workers and children run: the client's sender
 * groups, the server's connection handler and the FFI UDP receiver. The entry
 * (`main.ts`) loads only this module before deciding its role, so a worker
 * starts without the command line, the bench or the plots.
 *
 * @module
 */
import { defineRegistry } from "../shared/registry.ts";
import { runSenderGroup, type SenderInput } from "./sender.ts";
import { receiveConnection } from "./receiver.ts";
import { udpReceiveService } from "./udp_service.ts";

/** The interarrival registry (see shared/registry.ts). */
export const registry = defineRegistry({
  tasks: {
    "interarrival.senders": (inputs: SenderInput[], context: { signal?: AbortSignal }) =>
      runSenderGroup(inputs, context.signal),
  },
  handlers: { "interarrival.receiver": receiveConnection },
  services: { "interarrival.udp-receive": udpReceiveService },
});
