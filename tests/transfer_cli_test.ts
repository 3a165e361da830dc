import { assertEquals, assertOk } from "./_assert.ts";
import { type Captured, runTool } from "./_command.ts";
import { md5Hex } from "../transfer/protocol.ts";
import { download, upload } from "../transfer/client.ts";
import {
  patternBytes,
  withFileAndServer,
  withServer,
  withTempDir,
} from "./fixtures/transfer_helpers.ts";

function transfer(args: string[]): Promise<Captured> {
  return runTool("transfer", args);
}

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("transfer cli: exit codes and messages that say what and why", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/f`, new Uint8Array(10));
    const port = closedPort();
    const refused = await transfer(["upload", `${dir}/f`, "--id", "a", "--port", String(port)]);
    assertEquals(refused.code, 1);
    assertOk(
      refused.stderr.includes(`Cannot connect to 127.0.0.1:${port}: connection refused`),
      refused.stderr,
    );
    const noId = await transfer(["upload", `${dir}/f`]);
    assertEquals(noId.code, 2);
    assertOk(noId.stderr.includes("--id"), noId.stderr);
    const badMode = await transfer(["upload", `${dir}/f`, "--id", "a", "--mode", "warp"]);
    assertEquals(badMode.code, 2);
    assertOk(badMode.stderr.includes("'warp'"), badMode.stderr);
    const help = await transfer(["serve", "--help"]);
    assertEquals(help.code, 0);
    assertOk(help.stdout.includes("(default: 1379)"), help.stdout);
  });
});

Deno.test("transfer cli: the study's command line uploads, --json prints one document", async () => {
  await withTempDir(async (dir) => {
    const bytes = patternBytes(45_000, 31);
    await Deno.writeFile(`${dir}/otter.jpg`, bytes);
    await withServer(`${dir}/root`, async (server) => {
      const port = String(server.port);
      const study = await transfer([
        "--server_ip",
        "127.0.0.1",
        "-id",
        "123456",
        "--f",
        `${dir}/otter.jpg`,
        "--port",
        port,
      ]);
      assertEquals(study.code, 0, study.stderr);
      assertOk(/^Token: [A-Za-z0-9+/=]+$/m.test(study.stderr), study.stderr);
      assertOk(study.stdout.includes(`MD5 (server): ${md5Hex(bytes)}  ok`), study.stdout);
      const json = await transfer([
        "status",
        "otter.jpg",
        "--id",
        "123456",
        "--port",
        port,
        "--json",
      ]);
      assertEquals(json.code, 0, json.stderr);
      const doc = JSON.parse(json.stdout);
      assertEquals([doc.tool, doc.command, doc.error], ["transfer", "status", null]);
      assertEquals([doc.results.complete, doc.results.md5], [true, md5Hex(bytes)]);
      const missing = await transfer([
        "download",
        "nope",
        "--id",
        "123456",
        "--port",
        port,
        "--json",
      ]);
      assertEquals(missing.code, 1);
      assertOk(JSON.parse(missing.stdout).error.includes("404"), missing.stdout);
      // A single-key download never overwrites a local file silently.
      const out = `${dir}/existing.jpg`;
      await Deno.writeFile(out, new Uint8Array([1, 2, 3]));
      const args = ["download", "otter.jpg", "-o", out, "--id", "123456", "--port", port];
      const refused = await transfer([...args, "--json"]);
      assertEquals(refused.code, 1);
      assertEquals(
        JSON.parse(refused.stdout).error,
        `${out} already exists: use --force to overwrite it`,
      );
      assertEquals(await Deno.readFile(out), new Uint8Array([1, 2, 3]));
      const forced = await transfer([...args, "--force", "--quiet"]);
      assertEquals(forced.code, 0, forced.stderr);
      assertEquals(md5Hex(await Deno.readFile(out)), md5Hex(bytes));
    });
  });
});

Deno.test("transfer: --resume continues a download from the partial file", async () => {
  await withFileAndServer(200_000, 32, async ({ dir, bytes, server }) => {
    const options = { host: "127.0.0.1", port: server.port, id: "r", key: "k" };
    await upload(`${dir}/in.bin`, options);
    // An interrupted download: the first 6 of 10 blocks are in the partial file.
    const partial = new Uint8Array(bytes.length);
    partial.set(bytes.subarray(0, 6 * 20480));
    await Deno.writeFile(`${dir}/out.bin.part`, partial);
    await Deno.writeFile(
      `${dir}/out.bin.part.blocks`,
      new Uint8Array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0]),
    );
    const result = await download(`${dir}/out.bin`, { ...options, resume: true, mode: "async" });
    assertEquals([result.blocksSent, result.localMd5], [4, md5Hex(bytes)]);
    assertEquals(await Deno.readFile(`${dir}/out.bin`), bytes);
  });
});
