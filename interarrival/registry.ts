/**
 * Everything `interarrival`'s workers and children run: the sender task of the
 * client and the receiver handler of the server.
 *
 * @module
 */
import { defineRegistry } from "../shared/registry.ts";
import { senderGroupTask } from "./client.ts";
import { receiveConnection } from "./server.ts";

/** The interarrival registry (see shared/registry.ts). */
export const registry = defineRegistry({
  tasks: { "interarrival.senders": senderGroupTask.fn },
  handlers: { "interarrival.receiver": receiveConnection },
});
