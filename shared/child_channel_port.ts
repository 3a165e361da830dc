/**
 * The types both ends of a parent–child channel share (child_channel.ts and the
 * shared-memory endpoint), in a module of their own so that neither imports the
 * other for them.
 *
 * @module
 */
import type { StepPacket } from "./codec.ts";

/** A kind of parent–child channel. */
export type ChannelKind = "pipes" | "unix" | "shm";

/** One end of a parent–child channel. */
export interface PacketPort {
  readonly kind: ChannelKind;
  /** Queues one packet; never blocks. */
  send(envelope: Record<string, unknown>, bytes?: Uint8Array): void;
  /** The next packet; `null` once the other side closed or died. */
  read(): Promise<StepPacket | null>;
  /** No more packets from this side (the other side's `read` then returns `null`). */
  closeWrite(): void;
  /** Resolves once every queued packet has been handed to the kernel or the ring. */
  flush(): Promise<void>;
}
