import { assertEquals } from "./_assert.ts";
import { download, upload } from "../transfer/client.ts";
import { DIRECT_MIN_BYTES, DirectWriter } from "../transfer/direct_writer.ts";
import { md5Hex } from "../transfer/protocol.ts";
import { patternBytes, withFileAndServer, withTempDir } from "./fixtures/transfer_helpers.ts";

const BLOCK = 256 << 10;
// 20 whole blocks and a tail that is not a multiple of 4096 (goes through the page cache).
const SIZE = 20 * BLOCK + 1234;

/** Writes `bytes` in `order` through a writer of `path`; returns it and the blocks marked written. */
async function writeInOrder(path: string, bytes: Uint8Array, order: number[]) {
  await Deno.writeFile(path, new Uint8Array(0));
  const writer = DirectWriter.open(path, BLOCK);
  if (writer === null) return null;
  const marked: number[] = [];
  let expected = 0;
  for (const index of order) {
    await writer.room();
    const block = bytes.subarray(index * BLOCK, Math.min(bytes.length, (index + 1) * BLOCK));
    // The copy is taken at once: the caller's buffer may change right after.
    const scratch = block.slice();
    writer.write(index * BLOCK, scratch, writer.hashing && index === expected, () => {
      marked.push(index);
    });
    scratch.fill(0);
    if (index === expected) expected++;
  }
  await writer.drain();
  return { writer, marked };
}

Deno.test("transfer direct writer: in-order blocks give the same bytes and MD5", async () => {
  await withTempDir(async (dir) => {
    const bytes = patternBytes(SIZE, 7);
    const order = Array.from({ length: 21 }, (_, i) => i);
    const done = await writeInOrder(`${dir}/out.bin`, bytes, order);
    if (done === null) return; // No O_DIRECT here (tmpfs, no FFI): the buffered path runs instead.
    assertEquals(done.writer.hashing, true);
    assertEquals(await done.writer.digest(), md5Hex(bytes));
    done.writer.close();
    assertEquals(done.marked.toSorted((a, b) => a - b), order);
    assertEquals(md5Hex(await Deno.readFile(`${dir}/out.bin`)), md5Hex(bytes));
  });
});

Deno.test("transfer direct writer: blocks out of order stop the hash, the bytes still land", async () => {
  await withTempDir(async (dir) => {
    const bytes = patternBytes(SIZE, 8);
    const order = [0, 1, 5, 2, 3, 4, 20, ...Array.from({ length: 14 }, (_, i) => i + 6)];
    const done = await writeInOrder(`${dir}/out.bin`, bytes, order);
    if (done === null) return;
    assertEquals(done.writer.hashing, false);
    done.writer.close();
    assertEquals(done.marked.length, 21);
    assertEquals(md5Hex(await Deno.readFile(`${dir}/out.bin`)), md5Hex(bytes));
  });
});

Deno.test("transfer direct writer: a large default download is written directly, same bytes and MD5", async () => {
  const size = DIRECT_MIN_BYTES + 5000;
  await withFileAndServer(size, 9, async ({ dir, bytes, server }) => {
    const common = { host: "127.0.0.1", port: server.port, id: "direct" };
    const up = await upload(`${dir}/in.bin`, { ...common, key: "big" });
    assertEquals(up.plan, "fast");
    const down = await download(`${dir}/out.bin`, { ...common, key: "big" });
    const probe = DirectWriter.open(`${dir}/out.bin`, 1 << 20);
    probe?.close();
    assertEquals(down.writer, probe ? "direct" : "buffered");
    assertEquals([down.localMd5, down.serverMd5], [md5Hex(bytes), md5Hex(bytes)]);
    assertEquals(md5Hex(await Deno.readFile(`${dir}/out.bin`)), md5Hex(bytes));
    // The buffered path gives the same file.
    Deno.env.set("TRANSFER_DIRECT", "off");
    try {
      const buffered = await download(`${dir}/out2.bin`, { ...common, key: "big" });
      assertEquals([buffered.writer, buffered.localMd5], ["buffered", md5Hex(bytes)]);
    } finally {
      Deno.env.delete("TRANSFER_DIRECT");
    }
  });
});
