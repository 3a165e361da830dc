import { assertEquals, assertOk, assertRejects } from "./_assert.ts";
import { StepStatusError, upload } from "../transfer/client.ts";
import { encodePacket, makeToken, md5Hex, request } from "../transfer/protocol.ts";
import {
  listFiles,
  patternBytes,
  RawPeer,
  withServer,
  withTempDir,
} from "./fixtures/transfer_helpers.ts";

function header(jsonLength: number, binaryLength: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setUint32(0, jsonLength);
  new DataView(out.buffer).setUint32(4, binaryLength);
  return out;
}

function raw(jsonBytes: Uint8Array): Uint8Array {
  return new Uint8Array([...header(jsonBytes.length, 0), ...jsonBytes]);
}

const status = (reply: { json: Record<string, unknown> }) => [
  reply.json.operation,
  reply.json.status,
  reply.json.type,
];

Deno.test("transfer server: course status codes, labels and messages", async () => {
  await withTempDir(async (dir) => {
    await withServer(`${dir}/root`, async (server) => {
      const peer = await RawPeer.open(server.port);
      try {
        assertEquals(
          status(await peer.call({ type: "AUTH", operation: "LOGIN", direction: "REQUEST" })),
          ["LOGIN", 410, "AUTH"],
        );
        assertEquals(
          status(await peer.call(request("AUTH", "LOGIN", { username: "a", password: "x" }))),
          ["LOGIN", 401, "AUTH"],
        );
        assertEquals(status(await peer.call(request("FILE", "LOGIN", {}))), ["LOGIN", 409, "AUTH"]);
        const token = await peer.login("alice");
        assertEquals(status(await peer.call({ type: "FILE", direction: "REQUEST" })), [
          "ERROR",
          400,
          "ERROR",
        ]);
        assertEquals(status(await peer.call({ ...request("FILE", "GET"), direction: "X" })), [
          "ERROR",
          407,
          "ERROR",
        ]);
        assertEquals(status(await peer.call(request("FILE", "PATCH", { token }))), [
          "ERROR",
          408,
          "ERROR",
        ]);
        assertEquals(status(await peer.call(request("BLOB", "GET", { token }))), [
          "ERROR",
          409,
          "ERROR",
        ]);
        assertEquals(status(await peer.call(request("FILE", "GET", { key: "k" }))), [
          "GET",
          403,
          "AUTH",
        ]);
        assertEquals(
          (await peer.call({ direction: "EARTH" })).json.status,
          333,
        );
        // Fixed silent paths: every one of these now gets a reply.
        assertEquals(status(await peer.call(request("AUTH", "SAVE", { token }))), [
          "SAVE",
          409,
          "AUTH",
        ]);
        assertEquals(status(await peer.call(request("DATA", "UPLOAD", { token }))), [
          "UPLOAD",
          408,
          "DATA",
        ]);
        assertEquals(status(await peer.call(request("FILE", "GET", { token }))), [
          "GET",
          410,
          "FILE",
        ]);
        assertEquals(
          status(await peer.call(request("FILE", "SAVE", { token, key: "k", size: -1 }))),
          [
            "SAVE",
            410,
            "FILE",
          ],
        );
        assertEquals(
          status(await peer.call(request("FILE", "SAVE", { token, key: "k", size: "9" }))),
          [
            "SAVE",
            410,
            "FILE",
          ],
        );
        // The course's odd codes, kept.
        assertEquals(status(await peer.call(request("FILE", "SAVE", { token, key: "k" }))), [
          "SAVE",
          402,
          "FILE",
        ]);
        assertEquals(
          status(
            await peer.call(request("FILE", "UPLOAD", { token, key: "nope", block_index: 0 })),
          ),
          [
            "UPLOAD",
            408,
            "FILE",
          ],
        );
        const plan = await peer.call(request("FILE", "SAVE", { token, key: "k", size: 20481 }));
        assertEquals(plan.json, {
          key: "k",
          size: 20481,
          total_block: 2,
          block_size: 20480,
          operation: "SAVE",
          direction: "RESPONSE",
          status: 200,
          status_msg: "This is the upload plan.",
          type: "FILE",
        });
        const block = patternBytes(20481, 5);
        const up = (index: unknown, bytes: Uint8Array) =>
          peer.call(request("FILE", "UPLOAD", { token, key: "k", block_index: index }), bytes);
        assertEquals(status(await up(2, new Uint8Array(1))), ["UPLOAD", 410, "FILE"]);
        assertEquals(status(await up(-1, new Uint8Array(1))), ["UPLOAD", 410, "FILE"]);
        assertEquals(status(await up("0", new Uint8Array(1))), ["UPLOAD", 410, "FILE"]);
        assertEquals(status(await up(0, new Uint8Array(100))), ["UPLOAD", 406, "FILE"]);
        assertEquals((await up(1, block.subarray(20480))).json.md5, undefined);
        // A repeated SAVE does not wipe the upload in progress.
        assertEquals(
          status(await peer.call(request("FILE", "SAVE", { token, key: "k", size: 20481 }))),
          [
            "SAVE",
            402,
            "FILE",
          ],
        );
        const progress = await peer.call(request("FILE", "STATUS", { token, key: "k" }));
        assertEquals([progress.json.received_count, progress.json.missing_blocks], [1, [0]]);
        assertEquals(status(await peer.call(request("FILE", "GET", { token, key: "k" }))), [
          "GET",
          404,
          "FILE",
        ]);
        const last = await up(0, block.subarray(0, 20480));
        assertEquals(last.json.md5, md5Hex(block));
        assertEquals(status(await up(0, block.subarray(0, 20480))), ["UPLOAD", 408, "FILE"]);
        const got = await peer.call(request("FILE", "GET", { token, key: "k" }));
        assertEquals([got.json.size, got.json.total_block, got.json.md5], [
          20481,
          2,
          md5Hex(block),
        ]);
        const dl = await peer.call(
          request("FILE", "DOWNLOAD", { token, key: "k", block_index: 1 }),
        );
        assertEquals([dl.json.operation, dl.json.status, dl.json.size, [...dl.binary]], [
          "DOWNLOAD",
          200,
          1,
          [block[20480]],
        ]);
        assertEquals(
          status(await peer.call(request("FILE", "DOWNLOAD", { token, key: "k", block_index: 2 }))),
          [
            "GET",
            410,
            "FILE",
          ],
        );
        assertEquals(status(await peer.call(request("FILE", "DELETE", { token, key: "k" }))), [
          "GET",
          200,
          "FILE",
        ]);
        assertEquals(status(await peer.call(request("FILE", "DELETE", { token, key: "k" }))), [
          "GET",
          404,
          "FILE",
        ]);
        // DELETE of an unfinished upload removes it and answers 404, as the course does.
        await peer.call(request("FILE", "SAVE", { token, key: "half", size: 50000 }));
        assertEquals(status(await peer.call(request("FILE", "DELETE", { token, key: "half" }))), [
          "GET",
          404,
          "FILE",
        ]);
        assertEquals(status(await peer.call(request("FILE", "STATUS", { token, key: "half" }))), [
          "STATUS",
          404,
          "FILE",
        ]);
        // BYE: no reply, the connection closes.
        await peer.write(encodePacket(request("AUTH", "BYE", { token })));
        assertEquals(await peer.closedByServer(), true);
      } finally {
        peer.close();
      }
      assertEquals(
        listFiles(`${dir}/root`).filter((f) => !f.startsWith("file/")),
        [".step-secret"],
      );
    });
  });
});

Deno.test("transfer server: DATA stores the whole request and echoes it back", async () => {
  await withTempDir(async (dir) => {
    await withServer(`${dir}/root`, async (server) => {
      const peer = await RawPeer.open(server.port);
      try {
        const token = await peer.login("bob");
        const saved = await peer.call(
          request("DATA", "SAVE", { token, key: "ключ", note: "héllo" }),
        );
        assertEquals([saved.json.status, saved.json.key], [200, "ключ"]);
        assertEquals(
          (await peer.call(request("DATA", "SAVE", { token, key: "ключ" }))).json.status,
          402,
        );
        const got = await peer.call(request("DATA", "GET", { token, key: "ключ" }));
        assertEquals([got.json.status, got.json.note, got.json.key, got.json.token], [
          200,
          "héllo",
          "ключ",
          token,
        ]);
        const generated = await peer.call(request("DATA", "SAVE", { token, x: 1 }));
        assertOk(/^[0-9a-f-]{36}$/.test(String(generated.json.key)));
        assertEquals(
          (await peer.call(request("DATA", "DELETE", { token, key: "ключ" }))).json.status,
          200,
        );
        assertEquals(
          (await peer.call(request("DATA", "GET", { token, key: "ключ" }))).json.status,
          404,
        );
        assertEquals((await peer.call(request("DATA", "DELETE", { token }))).json.status, 410);
      } finally {
        peer.close();
      }
    });
  });
});

Deno.test("transfer server: malformed traffic gets an error or a close, and others are still served", async () => {
  await withTempDir(async (dir) => {
    await withServer(`${dir}/root`, async (server) => {
      const peer = await RawPeer.open(server.port);
      try {
        // Invalid UTF-8, invalid JSON, an array, a string: 400, and the stream stays in step.
        for (
          const bytes of [[0xff, 0xfe], [...new TextEncoder().encode("{nope")], [0x5b, 0x5d], [
            0x22,
            0x22,
          ]]
        ) {
          await peer.write(raw(new Uint8Array(bytes)));
          assertEquals(status(await peer.reply()), ["ERROR", 400, "ERROR"]);
        }
        await peer.write(raw(new Uint8Array(0)));
        assertEquals((await peer.reply()).json.status, 400);
        assertEquals(typeof (await peer.login()), "string");
        // Wrong types where the course server crashed.
        assertEquals(
          (await peer.call(request("AUTH", "LOGIN", { username: "a", password: 5 }))).json.status,
          410,
        );
        assertEquals(
          (await peer.call(request("AUTH", "LOGIN", { username: ["a"], password: "x" }))).json
            .status,
          410,
        );
        assertEquals(
          (await peer.call(request("FILE", "GET", { token: 12, key: "k" }))).json.status,
          403,
        );
        assertEquals(
          (await peer.call(request("FILE", "GET", { token: "!!notbase64", key: "k" }))).json.status,
          403,
        );
        // A length over the cap: an error reply, then the connection closes.
        await peer.write(header(0xffff_ffff, 0));
        assertEquals((await peer.reply()).json.status, 400);
        assertEquals(await peer.closedByServer(), true);
      } finally {
        peer.close();
      }
      const binary = await RawPeer.open(server.port);
      try {
        await binary.write(header(2, 0x7fff_ffff));
        assertEquals((await binary.reply()).json.status, 400);
        assertEquals(await binary.closedByServer(), true);
      } finally {
        binary.close();
      }
      // A truncated frame: the peer goes away mid-packet; the server keeps serving.
      const truncated = await RawPeer.open(server.port);
      await truncated.write(new Uint8Array([...header(100, 0), 0x7b, 0x22]));
      truncated.close();
      const other = await RawPeer.open(server.port);
      try {
        assertEquals(typeof (await other.login("carol")), "string");
      } finally {
        other.close();
      }
    });
  });
});

Deno.test("transfer server: forged, expired and traversing requests write nothing outside the root", async () => {
  await withTempDir(async (dir) => {
    await withServer(`${dir}/root`, async (server) => {
      const peer = await RawPeer.open(server.port);
      try {
        // With a private secret, a token made with the course's public secret is refused.
        const forged = makeToken("alice").token;
        assertEquals(
          (await peer.call(request("DATA", "GET", { token: forged, key: "k" }))).json.status,
          403,
        );
        const expired = makeToken("alice", {
          secret: "s3cret",
          ttlSeconds: 5,
          nowMs: Date.now() - 60_000,
        });
        const reply = await peer.call(request("DATA", "GET", { token: expired.token, key: "k" }));
        assertEquals([reply.json.status, reply.json.status_msg], [
          403,
          "Token has expired; log in again.",
        ]);
        const login = await peer.call(
          request("AUTH", "LOGIN", { username: "/tmp/x/../..", password: md5Hex("/tmp/x/../..") }),
        );
        assertEquals([login.json.status, login.json.token_ttl], [200, 60]);
        const token = login.json.token as string;
        for (const key of ["../../escape", "/etc/escape", "..", "a/../../b"]) {
          assertEquals(
            (await peer.call(request("DATA", "SAVE", { token, key, v: 1 }))).json.status,
            200,
          );
          assertEquals(
            (await peer.call(request("FILE", "SAVE", { token, key, size: 10 }))).json.status,
            200,
          );
          const up = await peer.call(
            request("FILE", "UPLOAD", { token, key, block_index: 0 }),
            new Uint8Array(10),
          );
          assertEquals(up.json.md5, md5Hex(new Uint8Array(10)));
        }
        assertEquals(
          (await peer.call(request("DATA", "SAVE", { token, key: "x".repeat(5000) }))).json.status,
          410,
        );
      } finally {
        peer.close();
      }
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["root"]);
      for (const path of listFiles(`${dir}/root`)) {
        assertOk(/^(data|file|tmp)\/[0-9a-f]{16}-[\w.-]*\/[0-9a-f]{16}-[\w.-]*$/.test(path), path);
      }
    }, { secret: "s3cret", tokenTtl: 60 });
  });
});

Deno.test("transfer server: 100 clients at once all verify; two on one key: one wins cleanly", async () => {
  await withTempDir(async (dir) => {
    const files = Array.from({ length: 100 }, (_, i) => patternBytes(20_000 + i * 100, i + 1));
    for (const [i, bytes] of files.entries()) await Deno.writeFile(`${dir}/f${i}`, bytes);
    await withServer(`${dir}/root`, async (server) => {
      const base = { host: "127.0.0.1", port: server.port, id: "many" };
      const results = await Promise.all(
        files.map((_, i) => upload(`${dir}/f${i}`, { ...base, key: `k${i}`, mode: "async" })),
      );
      assertEquals(results.map((r) => r.serverMd5), files.map((f) => md5Hex(f)));
      const same = await Promise.allSettled(
        [0, 1].map(() => upload(`${dir}/f0`, { ...base, key: "same", mode: "sequential" })),
      );
      assertEquals(same.filter((s) => s.status === "fulfilled").length, 1);
      const loser = same.find((s) => s.status === "rejected") as PromiseRejectedResult;
      assertOk(loser.reason instanceof StepStatusError, String(loser.reason));
      assertEquals(loser.reason.status, 402);
    });
  });
});

Deno.test("transfer server [process pool]: connections in two processes finishing together complete once", async () => {
  await withTempDir(async (dir) => {
    const bytes = patternBytes(20480 * 40 + 123, 41);
    const total = 41;
    await withServer(`${dir}/root`, async (server) => {
      const peers = await Promise.all([0, 1, 2, 3].map(() => RawPeer.open(server.port)));
      try {
        const tokens = await Promise.all(peers.map((peer) => peer.login("alice")));
        const plan = await peers[0].call(
          request("FILE", "SAVE", { token: tokens[0], key: "k", size: bytes.length }),
        );
        assertEquals(plan.json.total_block, total);
        // Each connection sends every fourth block, all at once.
        await Promise.all(peers.map(async (peer, p) => {
          for (let index = p; index < total; index += 4) {
            const block = bytes.subarray(index * 20480, (index + 1) * 20480);
            const reply = await peer.call(
              request("FILE", "UPLOAD", { token: tokens[p], key: "k", block_index: index }),
              block,
            );
            assertEquals(reply.json.status, 200);
          }
        }));
        const statuses = await Promise.all(
          peers.map((peer, p) =>
            peer.call(request("FILE", "STATUS", { token: tokens[p], key: "k" }))
          ),
        );
        assertEquals(
          statuses.map((s) => [s.json.complete, s.json.md5]),
          peers.map(() => [true, md5Hex(bytes)]),
        );
      } finally {
        for (const peer of peers) peer.close();
      }
      const files = listFiles(`${dir}/root`).filter((f) => !f.endsWith("/"));
      assertEquals(files.filter((f) => f.startsWith("tmp/")), []);
      assertEquals(files.filter((f) => f.startsWith("file/")).length, 2); // the file and its .md5
      const stored = files.find((f) => f.startsWith("file/") && !f.endsWith(".md5"))!;
      assertEquals(await Deno.readFile(`${dir}/root/${stored}`), bytes);
    }, { mode: "process", workers: 2 });
  });
});

Deno.test("transfer server: silent and stalled connections time out; others are served", async () => {
  await withTempDir(async (dir) => {
    await withServer(`${dir}/root`, async (server) => {
      const silent = await RawPeer.open(server.port);
      const stalled = await RawPeer.open(server.port);
      try {
        // Half a request, then nothing: the rest has requestTimeoutMs to arrive.
        await stalled.write(new Uint8Array([...header(50, 0), 0x7b]));
        const other = await RawPeer.open(server.port);
        try {
          assertEquals(typeof (await other.login("busy")), "string");
        } finally {
          other.close();
        }
        assertEquals(await silent.closedByServer(3000), true);
        assertEquals(await stalled.closedByServer(3000), true);
      } finally {
        silent.close();
        stalled.close();
      }
    }, { idleTimeoutMs: 300, requestTimeoutMs: 300 });
  });
});

Deno.test("transfer client: a server that never answers is a timeout error, not a hang", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/f`, new Uint8Array(10));
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) accepted.push(conn);
    })();
    try {
      const port = (listener.addr as Deno.NetAddr).port;
      const started = Date.now();
      const error = await assertRejects(
        () => upload(`${dir}/f`, { host: "127.0.0.1", port, id: "a", key: "k", timeoutMs: 300 }),
        Error,
        "Timed out after 300 ms waiting for the reply to AUTH LOGIN",
      );
      assertOk(Date.now() - started < 5000, error.message);
    } finally {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of accepted) conn.close();
    }
  });
});
