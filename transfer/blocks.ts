/**
 * The block movers of `transfer`'s client: a window of UPLOAD or DOWNLOAD
 * requests on one connection, and the shares that thread and process modes run
 * on connections of their own (the registry's `transfer.upload-share` and
 * `transfer.download-share` tasks).
 *
 * @module
 */
import { blockLength, md5Hex, type Reply, request, type StepJson } from "./protocol.ts";
import { md5File, readAtSync } from "./storage.ts";
import { Flusher } from "./flusher.ts";
import type { DirectWriter } from "./direct_writer.ts";
import { type AheadBlock, READ_AHEAD_RESERVE, type ReadAhead } from "./read_ahead.ts";
import { RateLimiter } from "./rate.ts";
import { StepConnection, StepStatusError } from "./connection.ts";

/** What one share (or the whole transfer, on one connection) moves. */
export interface ShareInput {
  host: string;
  port: number;
  timeoutMs: number;
  token: string;
  key: string;
  path: string;
  size: number;
  blockSize: number;
  /** Send the server's block size field (extension) with each request. */
  sendBlockSize: boolean;
  indices: number[];
  window: number;
  blockMd5: boolean;
  /** Bytes per second for this share's connection (0: no limit). */
  rate: number;
  tls?: { caCerts?: string[] };
}

/** Splits block indices into `count` contiguous runs of about equal length. */
export function splitShares(indices: number[], count: number): number[][] {
  const shares: number[][] = [];
  const n = Math.max(1, Math.min(count, indices.length));
  for (let i = 0; i < n; i++) {
    const share = indices.slice(
      Math.floor((i * indices.length) / n),
      Math.floor(((i + 1) * indices.length) / n),
    );
    if (share.length > 0) shares.push(share);
  }
  return shares;
}

/** The MD5 an UPLOAD reply carries (the upload is complete), if any; throws unless it is a 200. */
function uploadReplyMd5(reply: Reply): string | undefined {
  if (reply.json.status !== 200) {
    throw new StepStatusError(
      "FILE UPLOAD",
      Number(reply.json.status),
      String(reply.json.status_msg ?? ""),
    );
  }
  return typeof reply.json.md5 === "string" ? reply.json.md5 : undefined;
}

/**
 * Uploads blocks on one connection with up to `window` in flight. Returns the
 * MD5 if a reply completed the upload. `onBlock` sees each block's bytes in
 * index order of sending.
 */
export async function sendBlocks(
  connection: StepConnection,
  input: ShareInput,
  onBlock?: (index: number, data: Uint8Array) => void,
  limiter: RateLimiter | null = input.rate > 0 ? new RateLimiter(input.rate) : null,
): Promise<string | undefined> {
  using file = await Deno.open(input.path, { read: true });
  const reader = new BlockReader(file, input.path);
  let md5: string | undefined;
  let inFlight = 0;
  let next = 0;
  // Two packet buffers, reused: a block is read straight into one after its header
  // and JSON while the other is on the wire. The next packet is built while a reply
  // is awaited (a socket write goes out as it is called), so in the lockstep the
  // server's turn hides the client's (JSON, copy, progress).
  const buffers = [new Uint8Array(0), new Uint8Array(0)];
  let spare = 0;
  let ready: { packet: Uint8Array; length: number } | null = null;
  const prepare = (): { packet: Uint8Array; length: number } => {
    const index = input.indices[next];
    const length = blockLength(input.size, input.blockSize, index);
    const fields: StepJson = { token: input.token, key: input.key, block_index: index };
    let data: Uint8Array | null = null;
    if (input.blockMd5) {
      data = readAtSync(file, index * input.blockSize, length);
      reader.moved();
      fields.block_md5 = md5Hex(data);
    }
    const json = encoder.encode(JSON.stringify(request("FILE", "UPLOAD", fields)));
    const total = 8 + json.length + length;
    if (buffers[spare].length < total) buffers[spare] = new Uint8Array(total);
    const packet = buffers[spare];
    spare = 1 - spare;
    const view = new DataView(packet.buffer);
    view.setUint32(0, json.length);
    view.setUint32(4, length);
    packet.set(json, 8);
    const body = packet.subarray(8 + json.length, total);
    if (data) body.set(data);
    else reader.read(body, index * input.blockSize, index);
    onBlock?.(index, body);
    return { packet: packet.subarray(0, total), length };
  };
  const check = (reply: Reply) => {
    md5 = uploadReplyMd5(reply) ?? md5;
  };
  while (next < input.indices.length || ready !== null || inFlight > 0) {
    while (inFlight < input.window && (ready !== null || next < input.indices.length)) {
      const { packet, length } = ready ?? prepare();
      if (ready === null) next++;
      ready = null;
      await limiter?.take(length);
      const sending = connection.sendFramed(packet, "sending FILE UPLOAD");
      sending.catch(() => {}); // Awaited below; a failed read of the next block must not orphan it.
      inFlight++;
      // The other buffer is free: fill it while this packet goes out.
      if (next < input.indices.length) {
        ready = prepare();
        next++;
      }
      await sending;
    }
    check(await connection.receive("the reply to FILE UPLOAD"));
    inFlight--;
  }
  return md5;
}

/**
 * Uploads every block of the file in order on one connection with up to
 * `window` in flight, each sent from the buffer `ahead` read (and hashed) it
 * into, its header and JSON written just before it (read_ahead.ts: one write, no
 * copy). Returns the MD5 if a reply completed the upload.
 */
export async function sendBlocksAhead(
  connection: StepConnection,
  input: ShareInput,
  ahead: ReadAhead,
  onBlock?: (index: number, data: Uint8Array) => void,
): Promise<string | undefined> {
  let md5: string | undefined;
  let inFlight = 0;
  const receiveOne = async () => {
    md5 = uploadReplyMd5(await connection.receive("the reply to FILE UPLOAD")) ?? md5;
    inFlight--;
  };
  for (const index of input.indices) {
    const block: AheadBlock = await ahead.take(index);
    try {
      const fields: StepJson = { token: input.token, key: input.key, block_index: index };
      const json = encoder.encode(JSON.stringify(request("FILE", "UPLOAD", fields)));
      const body = block.buffer.subarray(READ_AHEAD_RESERVE, READ_AHEAD_RESERVE + block.length);
      let packet: Uint8Array;
      if (8 + json.length <= READ_AHEAD_RESERVE) {
        const start = READ_AHEAD_RESERVE - 8 - json.length;
        packet = block.buffer.subarray(start, READ_AHEAD_RESERVE + block.length);
        packet.set(json, 8);
      } else {
        // A JSON longer than the room before the block (a very long key): one copy.
        packet = new Uint8Array(8 + json.length + block.length);
        packet.set(json, 8);
        packet.set(body, 8 + json.length);
      }
      const view = new DataView(packet.buffer, packet.byteOffset, 8);
      view.setUint32(0, json.length);
      view.setUint32(4, block.length);
      onBlock?.(index, body);
      while (inFlight >= input.window) await receiveOne();
      await connection.sendFramed(packet, "sending FILE UPLOAD");
      inFlight++;
    } finally {
      ahead.release(block);
    }
  }
  while (inFlight > 0) await receiveOne();
  return md5;
}

const encoder = new TextEncoder();

/** Bytes read at once ahead of small blocks. */
const READ_AHEAD_BYTES = 1 << 20;

/**
 * Reads a file's blocks for sending. Blocks of up to a quarter of
 * {@linkcode READ_AHEAD_BYTES} (the lockstep's 20 KiB) are copied out of one
 * larger read: a read per block was a system call in every lockstep round trip.
 * Larger blocks are read straight into the packet. In-order blocks find the file
 * already positioned: no seek per block.
 */
class BlockReader {
  #ahead: Uint8Array | null = null;
  #aheadStart = 0;
  #aheadEnd = 0;
  /** Where the file's position is (-1: unknown). */
  #position = 0;

  constructor(readonly file: Deno.FsFile, readonly path: string) {}

  /** Someone else moved the file's position. */
  moved(): void {
    this.#position = -1;
  }

  /** Fills `into` with the file's bytes from `offset` (block `index`, for the error). */
  read(into: Uint8Array, offset: number, index: number): void {
    const length = into.length;
    if (length <= READ_AHEAD_BYTES / 4) {
      if (offset < this.#aheadStart || offset + length > this.#aheadEnd) {
        this.#ahead ??= new Uint8Array(READ_AHEAD_BYTES);
        this.#aheadStart = offset;
        this.#aheadEnd = offset + this.#fill(this.#ahead, offset);
      }
      if (offset + length <= this.#aheadEnd) {
        const from = offset - this.#aheadStart;
        into.set(this.#ahead!.subarray(from, from + length));
        return;
      }
    } else if (this.#fill(into, offset) === length) return;
    throw new Error(`${this.path} changed while it was being sent (block ${index} is short)`);
  }

  /** Reads from `offset` until `into` is full or the file ends; returns the bytes read. */
  #fill(into: Uint8Array, offset: number): number {
    if (this.#position !== offset) this.file.seekSync(offset, Deno.SeekMode.Start);
    this.#position = -1;
    let filled = 0;
    while (filled < into.length) {
      const n = this.file.readSync(into.subarray(filled));
      if (n === null || n === 0) break;
      filled += n;
    }
    this.#position = offset + filled;
    return filled;
  }
}

/**
 * Receives blocks on one connection with up to `window` in flight, writing them
 * into `path`: through `direct` when given (direct_writer.ts: past the page
 * cache, hashed in order from memory; a block's map byte is set once it is in
 * the file), else with buffered writes.
 */
export async function receiveBlocks(
  connection: StepConnection,
  input: ShareInput,
  onBlock?: (index: number, data: Uint8Array) => void,
  limiter: RateLimiter | null = input.rate > 0 ? new RateLimiter(input.rate) : null,
  direct: DirectWriter | null = null,
): Promise<void> {
  using file = await Deno.open(input.path, { read: true, write: true });
  using map = await Deno.open(`${input.path}.blocks`, { read: true, write: true });
  const sent: number[] = [];
  let next = 0;
  let done = 0;
  const flusher = new Flusher(input.path, file);
  try {
    while (done < input.indices.length) {
      while (sent.length < input.window && next < input.indices.length) {
        const index = input.indices[next++];
        const fields: StepJson = { token: input.token, key: input.key, block_index: index };
        if (input.sendBlockSize) fields.block_size = input.blockSize;
        if (input.blockMd5) fields.block_md5 = true;
        await limiter?.take(blockLength(input.size, input.blockSize, index));
        await connection.send(request("FILE", "DOWNLOAD", fields));
        sent.push(index);
      }
      const index = sent.shift()!;
      const reply = await connection.receive("a DOWNLOAD block");
      if (reply.json.status !== 200) {
        throw new StepStatusError(
          "FILE DOWNLOAD",
          Number(reply.json.status),
          String(reply.json.status_msg ?? ""),
        );
      }
      const expected = blockLength(input.size, input.blockSize, index);
      if (reply.json.block_index !== index || reply.binary.length !== expected) {
        throw new Error(
          `DOWNLOAD reply for block ${index} carried block ${reply.json.block_index} ` +
            `with ${reply.binary.length} bytes (expected ${expected})`,
        );
      }
      if (
        input.blockMd5 && typeof reply.json.block_md5 === "string" &&
        reply.json.block_md5 !== md5Hex(reply.binary)
      ) {
        throw new Error(`block ${index} arrived damaged (block_md5 mismatch)`);
      }
      const markReceived = () => {
        map.seekSync(index, Deno.SeekMode.Start);
        writeAll(map, new Uint8Array([1]));
      };
      if (direct) {
        await direct.room();
        direct.write(index * input.blockSize, reply.binary, direct.hashing, markReceived);
      } else {
        file.seekSync(index * input.blockSize, Deno.SeekMode.Start);
        writeAll(file, reply.binary);
        markReceived();
        flusher.wrote(reply.binary.length);
      }
      onBlock?.(index, reply.binary);
      done++;
    }
    await direct?.drain();
    await flusher.settle();
  } finally {
    flusher.close();
  }
  await file.syncData();
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
}

/** Hashes a whole file (the `transfer.md5-file` task: in a worker, so the hash overlaps an upload). */
export function md5FileShare(path: string): Promise<string> {
  return md5File(path);
}

/** Runs `body` on a connection of its own, closed afterwards. */
async function onOwnConnection<T>(
  input: ShareInput,
  body: (connection: StepConnection) => Promise<T>,
): Promise<T> {
  const connection = await StepConnection.open(input.host, input.port, input.timeoutMs, input.tls);
  try {
    return await body(connection);
  } finally {
    connection.close();
  }
}

/** One share of an upload on its own connection (the `transfer.upload-share` task). */
export function uploadShare(input: ShareInput): Promise<{ md5: string | null; bytes: number }> {
  return onOwnConnection(input, async (connection) => {
    const md5 = await sendBlocks(connection, input);
    return { md5: md5 ?? null, bytes: shareBytes(input) };
  });
}

/** One share of a download on its own connection (the `transfer.download-share` task). */
export function downloadShare(input: ShareInput): Promise<{ bytes: number }> {
  return onOwnConnection(input, async (connection) => {
    await receiveBlocks(connection, input);
    return { bytes: shareBytes(input) };
  });
}

function shareBytes(input: ShareInput): number {
  let bytes = 0;
  for (const index of input.indices) bytes += blockLength(input.size, input.blockSize, index);
  return bytes;
}
