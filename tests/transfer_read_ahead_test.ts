import { assertEquals, assertRejects } from "./_assert.ts";
import { READ_AHEAD_RESERVE, ReadAhead } from "../transfer/read_ahead.ts";
import { DirectWriter } from "../transfer/direct_writer.ts";
import { md5Hex } from "../transfer/protocol.ts";
import { patternBytes, withTempDir } from "./fixtures/transfer_helpers.ts";

const BLOCK = 64 << 10;
// More blocks than the read-ahead's buffers, and a short last block.
const SIZE = 21 * BLOCK + 777;

Deno.test("transfer read-ahead: blocks taken in order are the file's, and the MD5 is the file's", async () => {
  await withTempDir(async (dir) => {
    const bytes = patternBytes(SIZE, 3);
    await Deno.writeFile(`${dir}/in.bin`, bytes);
    const ahead = ReadAhead.open(`${dir}/in.bin`, SIZE, BLOCK);
    if (ahead === null) return; // No FFI or libcrypto here: the client's portable path runs.
    try {
      const seen: Uint8Array[] = [];
      for (let index = 0; index < Math.ceil(SIZE / BLOCK); index++) {
        const block = await ahead.take(index);
        assertEquals(block.index, index);
        const body = block.buffer.subarray(READ_AHEAD_RESERVE, READ_AHEAD_RESERVE + block.length);
        seen.push(body.slice());
        ahead.release(block);
      }
      const joined = new Uint8Array(SIZE);
      let at = 0;
      for (const part of seen) {
        joined.set(part, at);
        at += part.length;
      }
      assertEquals(at, SIZE);
      assertEquals(md5Hex(joined), md5Hex(bytes));
      assertEquals(await ahead.md5(), md5Hex(bytes));
    } finally {
      await ahead.close();
    }
  });
});

Deno.test("transfer read-ahead: detached after a few blocks, it still hashes the whole file", async () => {
  await withTempDir(async (dir) => {
    const bytes = patternBytes(SIZE, 5);
    await Deno.writeFile(`${dir}/in.bin`, bytes);
    const ahead = ReadAhead.open(`${dir}/in.bin`, SIZE, BLOCK);
    if (ahead === null) return;
    try {
      ahead.release(await ahead.take(0));
      const held = await ahead.take(1);
      ahead.detach();
      ahead.release(held);
      await assertRejects(() => ahead.take(2), Error, "detached");
      assertEquals(await ahead.md5(), md5Hex(bytes));
    } finally {
      await ahead.close();
    }
  });
});

Deno.test("transfer read-ahead: a file shorter than announced is an error, not a wrong digest", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/in.bin`, patternBytes(SIZE - BLOCK, 9));
    const ahead = ReadAhead.open(`${dir}/in.bin`, SIZE, BLOCK);
    if (ahead === null) return;
    try {
      ahead.detach();
      await assertRejects(() => ahead.md5(), Error, "changed while it was being sent");
    } finally {
      await ahead.close();
    }
  });
});

Deno.test("transfer direct writer: a lent buffer is written without a copy, an unused one comes back", async () => {
  await withTempDir(async (dir) => {
    const block = 256 << 10;
    const bytes = patternBytes(4 * block, 11);
    const path = `${dir}/out.bin`;
    await Deno.writeFile(path, new Uint8Array(0));
    const writer = DirectWriter.open(path, block);
    if (writer === null) return; // No O_DIRECT here: the buffered path runs instead.
    try {
      for (let index = 0; index < 4; index++) {
        const lent = writer.lend(block)!;
        assertEquals(lent.length, block);
        // An unused loan goes back and can be lent again.
        writer.giveBack(lent);
        const again = writer.lend(block)!;
        again.set(bytes.subarray(index * block, (index + 1) * block));
        await writer.room(again); // At once: the block is in a buffer of the ring already.
        writer.write(index * block, again, true, () => {});
        writer.giveBack(again); // Taken by the write: a no-op.
      }
      assertEquals(await writer.digest(), md5Hex(bytes));
      assertEquals(md5Hex(await Deno.readFile(path)), md5Hex(bytes));
    } finally {
      writer.close();
    }
  });
});
