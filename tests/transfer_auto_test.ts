/**
 * `--mode auto` (the default): against the Python STEP peer (the course's
 * behaviour) the client stays lockstep with 20480-byte blocks and is correct;
 * against our server it sees `capabilities` in the LOGIN reply and takes the
 * fast plan, with the hashes done by follower workers on both sides.
 */
import { assertEquals } from "./_assert.ts";
import { download, FAST_BLOCK_SIZE, upload } from "../transfer/client.ts";
import { md5Hex, request, SERVER_CAPABILITIES } from "../transfer/protocol.ts";
import { FOLLOW_MIN_BYTES } from "../transfer/hash_follow.ts";
import { testWithPythonServer } from "./fixtures/transfer_python_peer.ts";
import {
  ENTRY,
  patternBytes,
  RawPeer,
  withServer,
  withTempDir,
} from "./fixtures/transfer_helpers.ts";

testWithPythonServer(
  "transfer auto: against the Python STEP peer it stays lockstep and correct",
  async (dir, port) => {
    const bytes = patternBytes(100_000, 5);
    await Deno.writeFile(`${dir}/in.bin`, bytes);
    const options = { host: "127.0.0.1", port, id: "student", key: "in.bin", timeoutMs: 5000 };
    const up = await upload(`${dir}/in.bin`, options);
    assertEquals([up.plan, up.mode, up.blockSize, up.blocks], [
      "lockstep",
      "sequential",
      20480,
      5,
    ]);
    assertEquals(up.serverMd5, md5Hex(bytes));
    const down = await download(`${dir}/out.bin`, options);
    assertEquals([down.plan, down.blockSize], ["lockstep", 20480]);
    assertEquals(await Deno.readFile(`${dir}/out.bin`), bytes);
  },
);

Deno.test("transfer auto: our server announces capabilities; the client takes the fast plan", async () => {
  await withTempDir(async (dir) => {
    await withServer(`${dir}/root`, async (server) => {
      const peer = await RawPeer.open(server.port);
      try {
        const reply = await peer.call(
          request("AUTH", "LOGIN", { username: "a", password: md5Hex("a") }),
        );
        assertEquals(reply.json.capabilities, [...SERVER_CAPABILITIES]);
      } finally {
        peer.close();
      }
      // Large enough that both sides hash with a follower worker.
      const size = FOLLOW_MIN_BYTES + 3 * FAST_BLOCK_SIZE + 12345;
      const bytes = patternBytes(size, 9);
      await Deno.writeFile(`${dir}/big.bin`, bytes);
      const options = {
        host: "127.0.0.1",
        port: server.port,
        id: "alice",
        key: "big",
        entry: ENTRY,
        timeoutMs: 60_000,
      };
      const up = await upload(`${dir}/big.bin`, options);
      assertEquals([up.plan, up.mode, up.blockSize, up.streams], [
        "fast",
        "async",
        FAST_BLOCK_SIZE,
        1,
      ]);
      assertEquals([up.localMd5, up.serverMd5], [md5Hex(bytes), md5Hex(bytes)]);
      const down = await download(`${dir}/out.bin`, options);
      assertEquals([down.plan, down.localMd5], ["fast", md5Hex(bytes)]);
      assertEquals(await Deno.readFile(`${dir}/out.bin`), bytes);
      // A forced mode still forces its plan.
      const forced = await upload(`${dir}/big.bin`, {
        ...options,
        key: "forced",
        mode: "sequential",
        blockSize: 1 << 20,
      });
      assertEquals([forced.plan, forced.blockSize, forced.serverMd5], [
        "forced",
        1 << 20,
        md5Hex(bytes),
      ]);
    }, { mode: "async" });
  });
});
