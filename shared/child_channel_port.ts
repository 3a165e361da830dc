/**
 * The types both ends of a parent–child channel share (child_channel.ts, the
 * shared-memory endpoint and the threads' SharedArrayBuffer channel), in a
 * module of their own so that none imports another for them.
 *
 * @module
 */
import type { StepPacket } from "./codec.ts";

/**
 * The envelope of a message with no JSON data (a binary message), one frozen
 * object: a port that sees it writes {@linkcode NULL_MESSAGE_TEXT} without
 * serialising it, and reads that text back as a new equal object without parsing.
 */
export const NULL_MESSAGE: Readonly<{ t: "m"; data: null }> = Object.freeze({ t: "m", data: null });
/** {@linkcode NULL_MESSAGE} as JSON. */
export const NULL_MESSAGE_TEXT = JSON.stringify(NULL_MESSAGE);

/** A kind of parent–child channel. */
export type ChannelKind = "pipes" | "unix" | "shm";

/** A kind of channel between a parent and a worker thread. */
export type ThreadChannelKind = "sab" | "postmessage";

/** What carries a {@linkcode PacketPort}: a child channel kind, or `sab` between threads. */
export type PortKind = ChannelKind | "sab";

/** One end of a parent–child channel. */
export interface PacketPort {
  readonly kind: PortKind;
  /** Queues one packet; never blocks. */
  send(envelope: Record<string, unknown>, bytes?: Uint8Array): void;
  /** The next packet; `null` once the other side closed or died. */
  read(): Promise<StepPacket | null>;
  /** No more packets from this side (the other side's `read` then returns `null`). */
  closeWrite(): void;
  /** Resolves once every queued packet has been handed to the kernel or the ring. */
  flush(): Promise<void>;
}

/**
 * The region an endpoint works on: the control words and both rings, shared
 * between processes (`ShmRegion`, FFI) or between threads (`SabRegion`, a
 * SharedArrayBuffer).
 */
export interface RingRegion {
  readonly unmapped: boolean;
  load(index: number): number;
  exchange(index: number, value: number): number;
  /** Wakes a sleeper in {@linkcode nap} on a control word. */
  wake(index: number): void;
  /**
   * Blocks this thread while the word is `seen`, at most `us` µs (plus the
   * timer slack when `slack`: child_channel_shm.ts); true when it changed.
   */
  nap(index: number, seen: number, us: number, slack: boolean): boolean;
  ring(direction: 0 | 1): Uint8Array;
  updateAffinity(side: 0 | 1): boolean;
  dispose(): void;
}

/** How a sleeping reader is woken through the event loop (a socket, or a word waited on asynchronously). */
export interface Doorbell {
  /** Resolves when rung (a count above 0), or with `null` once the peer or this end closed. */
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<unknown>;
  close(): void;
}

/** Tuning of an endpoint's synchronous wait (child_channel_shm.ts step 2). */
export interface EndpointOptions {
  /** Longest synchronous nap, µs (default 400). */
  napMaxUs?: number;
  /**
   * Asked before each spin or nap: false skips them. Default: a child's end
   * always naps; a parent's end only while it is the isolate's only parent end
   * (with several, one ring's nap would delay the others' packets).
   */
  mayNap?: () => boolean;
}
