import { assertEquals, assertOk } from "./_assert.ts";
import { download, simpleRequest, upload } from "../transfer/client.ts";
import { md5Hex } from "../transfer/protocol.ts";
import { decodeText } from "../shared/codec.ts";
import { PEER, python, testWithPythonServer } from "./fixtures/transfer_python_peer.ts";
import { patternBytes, withServer, withTempDir } from "./fixtures/transfer_helpers.ts";

const suffix = python ? "" : " (skipped: needs python3)";

testWithPythonServer(
  `transfer interop: our client against the Python STEP peer (course quirks)${suffix}`,
  async (dir, port) => {
    const bytes = patternBytes(150_000, 21);
    await Deno.writeFile(`${dir}/in.bin`, bytes);
    // Sequential (lockstep) is the only mode the course's server survives; short
    // per-request timeouts keep its silent paths from hanging us.
    const options = { host: "127.0.0.1", port, id: "student", key: "in.bin", timeoutMs: 5000 };
    const up = await upload(`${dir}/in.bin`, options);
    assertEquals(up.serverMd5, md5Hex(bytes));
    // --resume against a server without STATUS starts afresh, which the course allows.
    const down = await download(`${dir}/out.bin`, options);
    assertEquals(await Deno.readFile(`${dir}/out.bin`), bytes);
    assertEquals(down.localMd5, md5Hex(bytes));
    // A non-ASCII key: the peer's JSON length is short; the client reads on until it parses.
    const saved = await simpleRequest(options, "DATA", "SAVE", { key: "ключ", note: "ü" });
    assertEquals([saved.reply.status, saved.reply.key], [200, "ключ"]);
    const got = await simpleRequest(options, "DATA", "GET", { key: "ключ" });
    assertEquals([got.reply.status, got.reply.note], [200, "ü"]);
    const deleted = await simpleRequest(options, "FILE", "DELETE", { key: "in.bin" });
    assertEquals([deleted.reply.operation, deleted.reply.status], ["GET", 200]);
  },
);

Deno.test({
  name: `transfer interop: the Python STEP client against our server${suffix}`,
  ignore: !python,
  fn: async () => {
    await withTempDir(async (dir) => {
      const bytes = patternBytes(123_457, 22);
      await Deno.writeFile(`${dir}/photo.jpg`, bytes);
      await withServer(`${dir}/root`, async (server) => {
        const run = async (args: string[]) => {
          const out = await new Deno.Command("python3", { args: [PEER, ...args] }).output();
          return { code: out.code, text: decodeText(out.stdout) };
        };
        const up = await run([
          "client",
          "127.0.0.1",
          String(server.port),
          "2141986",
          `${dir}/photo.jpg`,
        ]);
        assertEquals(up.code, 0, up.text);
        assertOk(up.text.startsWith("Token: "), up.text);
        assertOk(up.text.includes(`MD5: ${md5Hex(bytes)} OK`), up.text);
        const down = await run([
          "fetch",
          "127.0.0.1",
          String(server.port),
          "2141986",
          "photo.jpg",
          `${dir}/copy.jpg`,
        ]);
        assertEquals(down.code, 0, down.text);
        assertEquals(await Deno.readFile(`${dir}/copy.jpg`), bytes);
      });
    });
  },
});
