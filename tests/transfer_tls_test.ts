/**
 * TLS: certificates made with openssl (a test CA and a server certificate);
 * `serve` with them in every server mode, an upload and a download in every
 * client mode over TLS, checked by MD5; a client that does not trust the CA is
 * refused.
 */
import { assertEquals, assertRejects } from "./_assert.ts";
import { download, upload } from "../transfer/client.ts";
import { md5Hex } from "../transfer/protocol.ts";
import type { StartOptions } from "../transfer/server.ts";
import { ENTRY, patternBytes, withServer, withTempDir } from "./fixtures/transfer_helpers.ts";

function hasOpenssl(): boolean {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null" }).outputSync().success;
  } catch {
    return false;
  }
}
const openssl = hasOpenssl();

async function run(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** A CA and a server certificate it signed for localhost and 127.0.0.1 (rustls refuses a CA as the server's own certificate). */
async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  await run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=test CA",
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    `${dir}/ca.pem`,
  ]);
  await run([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    `${dir}/key.pem`,
    "-out",
    `${dir}/server.csr`,
  ]);
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
  );
  await run([
    "x509",
    "-req",
    "-in",
    `${dir}/server.csr`,
    "-CA",
    `${dir}/ca.pem`,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    `${dir}/ext.cnf`,
    "-out",
    `${dir}/cert.pem`,
  ]);
  return {
    ca: await Deno.readTextFile(`${dir}/ca.pem`),
    cert: await Deno.readTextFile(`${dir}/cert.pem`),
    key: await Deno.readTextFile(`${dir}/key.pem`),
  };
}

/** Server modes; the client's modes run against the async one. */
const SERVER_MODES: { name: string; options: StartOptions }[] = [
  { name: "async", options: { mode: "async" } },
  { name: "thread", options: { mode: "thread", workers: 2 } },
  { name: "process", options: { mode: "process", workers: 2 } },
];

for (const { name, options } of SERVER_MODES) {
  Deno.test({
    name: `transfer tls [server ${name}]: upload and download in every client mode`,
    ignore: !openssl,
    fn: async () => {
      await withTempDir(async (dir) => {
        const pair = await makeCertificates(dir);
        const bytes = patternBytes(300_000, 17);
        await Deno.writeFile(`${dir}/in.bin`, bytes);
        await withServer(`${dir}/root`, async (server) => {
          const base = {
            host: "127.0.0.1",
            port: server.port,
            id: "tls",
            entry: ENTRY,
            tls: { caCerts: [pair.ca] },
            timeoutMs: 60_000,
          };
          // Every client mode once (on the async server); the default elsewhere. Thread
          // first: under `deno test` on a loaded machine a thread client started after
          // the others took over 30 s to start its workers (not seen outside the runner).
          const modes = name === "async"
            ? ["thread", "auto", "sequential", "async", "process"] as const
            : ["auto"] as const;
          for (const mode of modes) {
            const key = `k-${mode}`;
            const up = await upload(`${dir}/in.bin`, { ...base, key, mode });
            assertEquals(up.serverMd5, md5Hex(bytes), mode);
            const down = await download(`${dir}/out-${mode}.bin`, { ...base, key, mode });
            assertEquals(down.localMd5, md5Hex(bytes), mode);
            assertEquals(await Deno.readFile(`${dir}/out-${mode}.bin`), bytes);
          }
          // Without the certificate among its roots, the client refuses the server.
          await assertRejects(
            () => upload(`${dir}/in.bin`, { ...base, key: "untrusted", tls: {} }),
            Error,
            `Cannot connect to 127.0.0.1:${server.port}`,
          );
        }, { ...options, tls: { cert: pair.cert, key: pair.key } });
      });
    },
  });
}
