import { assertEquals, assertOk, assertRejects } from "./_assert.ts";
import { StepStatusError, upload } from "../transfer/client.ts";
import { md5Hex, request } from "../transfer/protocol.ts";
import { BufferedReader } from "../shared/reader.ts";
import { decodeText } from "../shared/codec.ts";
import {
  listFiles,
  patternBytes,
  RawPeer,
  withServer,
  withTempDir,
} from "./fixtures/transfer_helpers.ts";

const MAIN = new URL("../transfer/main.ts", import.meta.url).pathname;

function transferCommand(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-all", "--unstable-net", MAIN, ...args],
    stdout: "piped",
    stderr: "null",
    stdin: "null",
  }).spawn();
}

async function statusOf(port: number, key: string): Promise<Record<string, unknown>> {
  const peer = await RawPeer.open(port);
  try {
    const token = await peer.login("alice");
    return (await peer.call(request("FILE", "STATUS", { token, key }))).json;
  } finally {
    peer.close();
  }
}

Deno.test("transfer faults: a client killed mid-upload leaves nothing complete; --resume finishes it", async () => {
  await withTempDir(async (dir) => {
    const bytes = patternBytes(6_000_000, 11);
    await Deno.writeFile(`${dir}/in.bin`, bytes);
    await withServer(`${dir}/root`, async (server) => {
      // Small blocks make the upload long enough to be caught in the middle.
      const child = transferCommand([
        "upload",
        `${dir}/in.bin`,
        "--key=big",
        "--id=alice",
        `--port=${server.port}`,
        "--block-size=1024",
        "--quiet",
      ]);
      const deadline = Date.now() + 20_000;
      let received = 0;
      while (Date.now() < deadline) {
        const status = await statusOf(server.port, "big");
        received = Number(status.received_count ?? 0);
        if (received >= 50) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      child.kill("SIGKILL");
      await child.status;
      const status = await statusOf(server.port, "big");
      assertEquals(status.complete, false, "the upload finished before it could be killed");
      const peer = await RawPeer.open(server.port);
      try {
        const token = await peer.login("alice");
        const got = await peer.call(request("FILE", "GET", { token, key: "big" }));
        assertEquals([got.json.status, got.json.status_msg], [
          404,
          "The key big is not completely uploaded.",
        ]);
        const block = await peer.call(
          request("FILE", "DOWNLOAD", { token, key: "big", block_index: 0 }),
        );
        assertEquals(block.json.status, 404);
      } finally {
        peer.close();
      }
      assertEquals(listFiles(`${dir}/root`).filter((f) => f.startsWith("file/")), []);
      const resumed = await upload(`${dir}/in.bin`, {
        host: "127.0.0.1",
        port: server.port,
        id: "alice",
        key: "big",
        mode: "async",
        resume: true,
      });
      assertEquals(resumed.serverMd5, md5Hex(bytes));
      assertEquals(resumed.blockSize, 1024);
      assertOk(resumed.blocksSent < resumed.blocks, `${resumed.blocksSent} of ${resumed.blocks}`);
    });
  });
});

Deno.test("transfer faults: a server killed mid-upload and restarted resumes the upload", async () => {
  await withTempDir(async (dir) => {
    const bytes = patternBytes(200_000, 12);
    await Deno.writeFile(`${dir}/in.bin`, bytes);
    const startServer = async () => {
      const child = transferCommand([
        "serve",
        "--host=127.0.0.1",
        "--port=0",
        `--root=${dir}/root`,
        "--quiet",
      ]);
      const reader = new BufferedReader(child.stdout);
      const line = decodeText((await reader.readLine(1000, { timeout: 20_000 })) as Uint8Array);
      const port = Number(/:(\d+) /.exec(line)?.[1]);
      assertOk(port > 0, line);
      return { child, port };
    };
    const first = await startServer();
    try {
      const peer = await RawPeer.open(first.port);
      try {
        const token = await peer.login("alice");
        await peer.call(request("FILE", "SAVE", { token, key: "k", size: bytes.length }));
        for (const index of [0, 1, 2, 5]) {
          const block = bytes.subarray(index * 20480, (index + 1) * 20480);
          assertEquals(
            (await peer.call(
              request("FILE", "UPLOAD", { token, key: "k", block_index: index }),
              block,
            )).json.status,
            200,
          );
        }
      } finally {
        peer.close();
      }
    } finally {
      first.child.kill("SIGKILL");
      await first.child.status;
    }
    const second = await startServer();
    try {
      const status = await statusOf(second.port, "k");
      assertEquals([status.received_count, (status.missing_blocks as number[]).length], [4, 6]);
      const resumed = await upload(`${dir}/in.bin`, {
        host: "127.0.0.1",
        port: second.port,
        id: "alice",
        key: "k",
        resume: true,
      });
      assertEquals([resumed.serverMd5, resumed.blocksSent], [md5Hex(bytes), 6]);
    } finally {
      second.child.kill("SIGTERM");
      await second.child.status;
    }
  });
});

/** Whether this process may mount a tmpfs (root, with the capability, not in a locked container). */
function tmpfsMountable(): boolean {
  if (Deno.uid() !== 0) return false;
  const dir = Deno.makeTempDirSync({ prefix: "transfer_mount_probe_" });
  try {
    const mounted = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir],
      stderr: "null",
    }).outputSync().code === 0;
    if (mounted) new Deno.Command("umount", { args: [dir] }).outputSync();
    return mounted;
  } catch {
    return false;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const canMount = tmpfsMountable();

Deno.test({
  name: `transfer faults: a full disk is a clear error and leaves no file${
    canMount ? "" : " (skipped: cannot mount a tmpfs here)"
  }`,
  ignore: !canMount,
  fn: async () => {
    await withTempDir(async (dir) => {
      const bytes = patternBytes(3_000_000, 13);
      await Deno.writeFile(`${dir}/in.bin`, bytes);
      await Deno.mkdir(`${dir}/small`);
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", `${dir}/small`],
      }).output();
      assertEquals(mount.code, 0, new TextDecoder().decode(mount.stderr));
      try {
        await withServer(`${dir}/small/root`, async (server) => {
          const error = await assertRejects(
            () =>
              upload(`${dir}/in.bin`, {
                host: "127.0.0.1",
                port: server.port,
                id: "alice",
                key: "k",
              }),
            StepStatusError,
          );
          assertEquals(error.status, 500);
          assertOk(/no space left on device/i.test(error.statusMsg), error.statusMsg);
          const status = await statusOf(server.port, "k");
          assertEquals(status.complete, false);
          assertEquals(listFiles(`${dir}/small/root`).filter((f) => f.startsWith("file/")), []);
        });
      } finally {
        await new Deno.Command("umount", { args: [`${dir}/small`] }).output();
      }
    });
  },
});
