/**
 * More than one file: directories with relative keys and a prefix, LIST,
 * skip-unchanged by MD5, --force, download --all, errors that say what to do,
 * --limit-rate across streams, and the CLI's one --json document per set.
 */
import { assertEquals, assertOk, assertRejects } from "./_assert.ts";
import { upload } from "../transfer/client.ts";
import {
  collectUploads,
  downloadMany,
  listRemote,
  safeLocalPath,
  uploadMany,
} from "../transfer/files.ts";
import { md5Hex } from "../transfer/protocol.ts";
import { parseRate } from "../transfer/rate.ts";
import { ENTRY, patternBytes, withServer, withTempDir } from "./fixtures/transfer_helpers.ts";

const MAIN = new URL("../transfer/main.ts", import.meta.url).pathname;

async function makeTree(dir: string): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {
    "a.jpg": patternBytes(30_000, 1),
    "b.jpg": patternBytes(70_000, 2),
    "sub/c.jpg": patternBytes(5_000, 3),
    "sub/deeper/d.txt": patternBytes(10, 4),
  };
  for (const [name, bytes] of Object.entries(files)) {
    const path = `${dir}/photos/${name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(path, bytes);
  }
  return files;
}

Deno.test("transfer files: directories upload with relative keys, skip unchanged, need --force", async () => {
  await withTempDir(async (dir) => {
    const files = await makeTree(dir);
    await Deno.writeFile(`${dir}/single.bin`, patternBytes(100, 5));
    assertEquals(
      collectUploads([`${dir}/photos`, `${dir}/single.bin`], "p/").map((e) => e.key),
      ["p/a.jpg", "p/b.jpg", "p/sub/c.jpg", "p/sub/deeper/d.txt", "p/single.bin"],
    );
    let error = "";
    try {
      collectUploads([`${dir}/photo.jpg`]);
    } catch (e) {
      error = (e as Error).message;
    }
    assertEquals(error, `Cannot read ${dir}/photo.jpg: no such file`);
    await withServer(`${dir}/root`, async (server) => {
      const options = { host: "127.0.0.1", port: server.port, id: "u", entry: ENTRY };
      const entries = collectUploads([`${dir}/photos`], "p/");
      const first = await uploadMany(entries, options);
      assertEquals([first.done, first.skipped, first.failed], [4, 0, 0]);
      assertEquals(first.bytes, 105_010);
      const listed = await listRemote(options, "p/sub/");
      assertEquals(listed, {
        files: [
          { key: "p/sub/c.jpg", size: 5000, md5: md5Hex(files["sub/c.jpg"]), complete: true },
          {
            key: "p/sub/deeper/d.txt",
            size: 10,
            md5: md5Hex(files["sub/deeper/d.txt"]),
            complete: true,
          },
        ],
        truncated: false,
      });
      // Unchanged: all skipped.
      const again = await uploadMany(entries, options);
      assertEquals(again.files.map((r) => r.status), ["skipped", "skipped", "skipped", "skipped"]);
      // One changed: refused without --force, replaced with it.
      const changed = patternBytes(30_000, 99);
      await Deno.writeFile(`${dir}/photos/a.jpg`, changed);
      const refused = await uploadMany(entries, options);
      assertEquals(refused.files.map((r) => r.status), ["failed", "skipped", "skipped", "skipped"]);
      assertEquals(
        refused.files[0].reason,
        "'p/a.jpg' is already stored with other content: use --force to overwrite it",
      );
      const forced = await uploadMany(entries, { ...options, force: true });
      assertEquals(forced.files.map((r) => r.status), [
        "uploaded",
        "skipped",
        "skipped",
        "skipped",
      ]);
      assertEquals(forced.files[0].md5, md5Hex(changed));
      // Download everything back: the tree under the output directory, then skipped.
      const out = `${dir}/out`;
      const down = await downloadMany([], out, { ...options, all: true, prefix: "p/" });
      assertEquals([down.done, down.failed], [4, 0]);
      assertEquals(await Deno.readFile(`${out}/p/a.jpg`), changed);
      assertEquals(await Deno.readFile(`${out}/p/sub/deeper/d.txt`), files["sub/deeper/d.txt"]);
      const twice = await downloadMany(["p/a.jpg", "p/b.jpg"], out, options);
      assertEquals(twice.files.map((r) => r.status), ["skipped", "skipped"]);
      await Deno.writeFile(`${out}/p/b.jpg`, new Uint8Array(3));
      const clash = await downloadMany(["p/b.jpg"], out, options);
      assertEquals(
        clash.files[0].reason,
        `${out}/p/b.jpg exists with other content: use --force to overwrite it`,
      );
      const over = await downloadMany(["p/b.jpg"], out, { ...options, force: true });
      assertEquals(over.files[0].status, "downloaded");
      assertEquals(await Deno.readFile(`${out}/p/b.jpg`), files["b.jpg"]);
      assertEquals(safeLocalPath(out, "../x"), null);
      assertEquals(safeLocalPath(out, "/etc/passwd"), null);
    });
  });
});

Deno.test("transfer files: an unfinished upload says --resume or --force", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/f.bin`, patternBytes(50_000, 7));
    await withServer(`${dir}/root`, async (server) => {
      const options = { host: "127.0.0.1", port: server.port, id: "u", entry: ENTRY };
      const { simpleRequest } = await import("../transfer/client.ts");
      await simpleRequest(options, "FILE", "SAVE", { key: "f.bin", size: 50_000 });
      const entries = collectUploads([`${dir}/f.bin`]);
      const refused = await uploadMany(entries, options);
      assertEquals(
        refused.files[0].reason,
        "'f.bin' has an unfinished upload: use --resume to finish it or --force to start again",
      );
      const resumed = await uploadMany(entries, { ...options, resume: true });
      assertEquals(resumed.files[0].status, "uploaded");
    });
  });
});

// Thread and process modes give each of their `streams` workers `rate / streams`
// (client.ts); their worker start-up is too slow on a loaded machine to time here.
Deno.test("transfer files: --limit-rate paces the bytes", async () => {
  await withTempDir(async (dir) => {
    const bytes = patternBytes(400_000, 8);
    await Deno.writeFile(`${dir}/r.bin`, bytes);
    assertEquals(parseRate("1MiB/s"), 1 << 20);
    assertEquals(parseRate("500k"), 500_000);
    await withServer(`${dir}/root`, async (server) => {
      const base = { host: "127.0.0.1", port: server.port, id: "u", entry: ENTRY };
      for (const mode of ["async", "sequential"] as const) {
        const started = performance.now();
        const result = await upload(`${dir}/r.bin`, {
          ...base,
          key: `r-${mode}`,
          mode,
          streams: 2,
          blockSize: 20480,
          limitRate: 1_000_000,
        });
        const seconds = (performance.now() - started) / 1000;
        assertEquals(result.serverMd5, md5Hex(bytes));
        // 400 kB at 1 MB/s takes at least 0.4 s (less one block of slack per stream).
        assertOk(seconds >= 0.3, `${mode}: ${seconds.toFixed(3)} s is faster than the limit`);
      }
    });
  });
});

Deno.test("transfer files: the CLI prints one --json document for a set, exit 1 on a failure", async () => {
  await withTempDir(async (dir) => {
    await makeTree(dir);
    await withServer(`${dir}/root`, async (server) => {
      const run = async (args: string[]) => {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "--quiet", "--allow-all", "--unstable-net", MAIN, ...args],
          stdout: "piped",
          stderr: "piped",
        }).output();
        return {
          code: out.code,
          stdout: new TextDecoder().decode(out.stdout),
          stderr: new TextDecoder().decode(out.stderr),
        };
      };
      const common = ["--id=u", `--port=${server.port}`, "--json"];
      const up = await run(["upload", `${dir}/photos`, ...common]);
      assertEquals(up.code, 0, up.stderr);
      const doc = JSON.parse(up.stdout);
      assertEquals([doc.command, doc.error, doc.results.done], ["upload", null, 4]);
      assertEquals(doc.results.files.map((r: { key: string }) => r.key), [
        "a.jpg",
        "b.jpg",
        "sub/c.jpg",
        "sub/deeper/d.txt",
      ]);
      const missing = await run(["upload", `${dir}/photo.jpg`, ...common]);
      assertEquals(missing.code, 1);
      assertEquals(JSON.parse(missing.stdout).error, `Cannot read ${dir}/photo.jpg: no such file`);
      const list = await run(["list", ...common]);
      assertEquals(JSON.parse(list.stdout).results.files.length, 4);
    });
  });
});

Deno.test("transfer files: a set against an unreachable server is a connect error", async () => {
  await assertRejects(
    () => downloadMany([], "/nonexistent", { host: "127.0.0.1", port: 9, id: "u", all: true }),
    Error,
    "Cannot connect to 127.0.0.1:9",
  );
});
