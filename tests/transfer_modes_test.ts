import { assertEquals, assertOk, assertRejects } from "./_assert.ts";
import { download, Md5MismatchError, StepStatusError, upload } from "../transfer/client.ts";
import { md5Hex } from "../transfer/protocol.ts";
import { liveChildPids } from "../shared/runtime.ts";
import { MODES } from "../shared/mode.ts";
import {
  ENTRY,
  listFiles,
  patternBytes,
  withFileAndServer,
  withServer,
  withTempDir,
} from "./fixtures/transfer_helpers.ts";

const SIZE = 300_000; // 15 blocks of 20480 and a short last one

for (const mode of MODES) {
  Deno.test(`transfer [client ${mode}]: upload and download store the same bytes and MD5`, async () => {
    await withTempDir(async (dir) => {
      const bytes = patternBytes(SIZE, 3);
      await Deno.writeFile(`${dir}/in.bin`, bytes);
      await withServer(`${dir}/root`, async (server) => {
        const options = {
          host: "127.0.0.1",
          port: server.port,
          id: "alice",
          key: `file-${mode}`,
          mode,
          streams: 2,
          window: 4,
          entry: ENTRY,
        };
        const progress: number[] = [];
        const up = await upload(`${dir}/in.bin`, {
          ...options,
          onProgress: (done) => progress.push(done),
        });
        assertEquals(up.localMd5, md5Hex(bytes));
        assertEquals(up.serverMd5, md5Hex(bytes));
        assertEquals([up.blocks, up.blocksSent, up.size], [15, 15, SIZE]);
        assertEquals(progress[progress.length - 1], SIZE);
        const down = await download(`${dir}/out.bin`, options);
        assertEquals(down.localMd5, md5Hex(bytes));
        assertEquals(await Deno.readFile(`${dir}/out.bin`), bytes);
        assertEquals(listFiles(dir).filter((f) => f.startsWith("out")), ["out.bin"]);
      });
      assertEquals(liveChildPids(), []);
    });
  });
}

const serverCases = [
  { mode: "sequential" as const, perConnection: false },
  { mode: "thread" as const, perConnection: false },
  { mode: "process" as const, perConnection: false },
  { mode: "thread" as const, perConnection: true },
];

for (const { mode, perConnection } of serverCases) {
  const name = `${mode}${perConnection ? ", per connection" : ""}`;
  Deno.test(`transfer [server ${name}]: several clients and streams, every file verifies`, async () => {
    await withTempDir(async (dir) => {
      const files = [1, 2, 3].map((seed) => patternBytes(100_000 + seed * 7777, seed));
      for (const [i, bytes] of files.entries()) await Deno.writeFile(`${dir}/in${i}.bin`, bytes);
      await withServer(`${dir}/root`, async (server) => {
        const results = await Promise.all(files.map((_, i) =>
          upload(`${dir}/in${i}.bin`, {
            host: "127.0.0.1",
            port: server.port,
            id: `user${i}`,
            key: `k${i}`,
            // A sequential server serves one connection at a time: single-connection clients only.
            mode: i === 2 && mode !== "sequential" ? "thread" : "async",
            streams: 3,
            entry: ENTRY,
          })
        ));
        assertEquals(results.map((r) => r.serverMd5), files.map((f) => md5Hex(f)));
      }, { mode, workers: 2, perConnection });
      assertEquals(liveChildPids(), []);
    });
  });
}

Deno.test("transfer: a chosen block size and per-block MD5 (extensions)", async () => {
  await withFileAndServer(1_000_001, 9, async ({ dir, bytes, server }) => {
    const options = {
      host: "127.0.0.1",
      port: server.port,
      id: "carol",
      key: "big-blocks",
      mode: "async" as const,
      blockSize: 65536,
      blockMd5: true,
    };
    const up = await upload(`${dir}/in.bin`, options);
    assertEquals([up.blockSize, up.blocks, up.serverMd5], [65536, 16, md5Hex(bytes)]);
    const down = await download(`${dir}/out.bin`, options);
    assertEquals([down.blockSize, down.localMd5], [65536, md5Hex(bytes)]);
    // A second upload of the same key is refused with the course's 402.
    const error = await assertRejects(() => upload(`${dir}/in.bin`, options), StepStatusError);
    assertEquals(error.status, 402);
  });
});

Deno.test("transfer: an empty file uploads and downloads", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/empty`, new Uint8Array(0));
    await withServer(`${dir}/root`, async (server) => {
      const options = { host: "127.0.0.1", port: server.port, id: "dan", key: "empty" };
      const up = await upload(`${dir}/empty`, options);
      assertEquals([up.blocks, up.serverMd5], [0, md5Hex("")]);
      const down = await download(`${dir}/out`, options);
      assertEquals(down.size, 0);
    });
  });
});

Deno.test("transfer: a download whose MD5 does not match leaves no file under the name", async () => {
  await withFileAndServer(50_000, 4, async ({ dir, server }) => {
    const options = { host: "127.0.0.1", port: server.port, id: "erin", key: "k" };
    await upload(`${dir}/in.bin`, options);
    // Damage the stored file behind the server's back: its recorded MD5 no longer matches.
    const [stored] = listFiles(`${dir}/root/file`).filter((f) => !f.endsWith(".md5"));
    const path = `${dir}/root/file/${stored}`;
    const damaged = await Deno.readFile(path);
    damaged[100] ^= 0xff;
    await Deno.writeFile(path, damaged);
    await assertRejects(() => download(`${dir}/out.bin`, options), Md5MismatchError);
    assertOk(listFiles(dir).every((f) => !f.startsWith("out")), listFiles(dir).join(","));
  });
});
