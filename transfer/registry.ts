/**
 * Everything `transfer`'s workers and children run: the client's share tasks
 * (thread and process modes) and its whole-file hash, the server's STEP
 * connection handler, the hash follower's worker service, and the bench's raw
 * TCP sink. The entry (`main.ts`) loads only this module before deciding its
 * role, so a worker starts without the command line, the bench or its plots.
 *
 * @module
 */
import { defineRegistry } from "../shared/registry.ts";
import { downloadShare, md5FileShare, uploadShare } from "./blocks.ts";
import { HASH_FOLLOW_SERVICE, hashFollowService } from "./hash_follow_service.ts";
import { stepConnection } from "./step_handler.ts";
import { rawSink } from "./raw_sink.ts";
import { Md5MismatchError, StepStatusError } from "./connection.ts";

/** The transfer registry (see shared/registry.ts). */
export const registry = defineRegistry({
  tasks: {
    "transfer.upload-share": uploadShare,
    "transfer.download-share": downloadShare,
    "transfer.md5-file": md5FileShare,
  },
  services: { [HASH_FOLLOW_SERVICE]: hashFollowService },
  handlers: { "transfer.step": stepConnection, "transfer.raw-sink": rawSink },
  errors: [StepStatusError, Md5MismatchError],
});
