import { assertEquals, assertOk } from "./_assert.ts";
import { BufferPool } from "../taskserver/buffer_pool.ts";

Deno.test("BufferPool: views of shared slabs, disjoint, reused after release", () => {
  const pool = new BufferPool(16, 4);
  const a = [pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()];
  // One slab of 4 × 16 bytes, carved in order.
  assertEquals(a.map((b) => [b.byteOffset, b.byteLength]), [[0, 16], [16, 16], [32, 16], [48, 16]]);
  for (const b of a) assertOk(b.buffer === a[0].buffer);
  // The fifth comes from a new slab.
  const e = pool.acquire();
  assertOk(e.buffer !== a[0].buffer);
  assertEquals([e.byteOffset, e.byteLength], [0, 16]);
  // Writing one never touches another.
  a[1].fill(7);
  assertEquals([a[0][15], a[1][0], a[1][15], a[2][0]], [0, 7, 7, 0]);
  pool.release(a[2]);
  assertEquals(pool.free, 1);
  assertOk(pool.acquire() === a[2]);
  assertEquals(pool.free, 0);
});
