/**
 * `taskserver load` against a server in another network namespace, joined by a
 * veth pair: the generator's namespace is the test's private one (netnsTest),
 * the server's a named one created and deleted here.
 */
import { assertEquals } from "./_assert.ts";
import { netnsTest } from "./_netns.ts";
import { runLoad } from "../taskserver/load.ts";
import { parseMix } from "../taskserver/load_plan.ts";
import { readUntil } from "./_taskserver_load_server.ts";

async function sh(command: string): Promise<void> {
  const out = await new Deno.Command("sh", { args: ["-c", command], stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${command}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  const text = await readUntil(reader, (t) => t.includes("\n"), 30_000);
  reader.releaseLock();
  return text.split("\n")[0];
}

netnsTest(import.meta.url, "taskserver load: a server in another namespace over veth", async () => {
  const ns = `ts-load-${Deno.pid}`;
  await sh(`ip netns add ${ns}`);
  let server: Deno.ChildProcess | undefined;
  try {
    await sh(
      `ip link add veth-cli type veth peer name veth-srv && ip link set veth-srv netns ${ns} && ` +
        `ip addr add 10.77.0.1/24 dev veth-cli && ip link set veth-cli up && ` +
        `ip netns exec ${ns} sh -c 'ip link set lo up && ip addr add 10.77.0.2/24 dev veth-srv ` +
        `&& ip link set veth-srv up'`,
    );
    const main = new URL("../taskserver/main.ts", import.meta.url).pathname;
    server = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "--quiet",
        "--allow-all",
        "--unstable-net",
        main,
        "serve",
        "--host=10.77.0.2",
        "--port=0",
        "--json",
        "--quiet",
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const port = JSON.parse(await firstLine(server.stdout)).results.port;
    const report = await runLoad({
      host: "10.77.0.2",
      port,
      connections: 8,
      rate: 2000,
      pipeline: 1,
      warmupMs: 0,
      durationMs: null,
      requests: 2000,
      requestsPerConnection: null,
      timeoutMs: 10_000,
      framing: "line",
      mix: parseMix("1:30,2:30,3:40"),
      payload: "BenchmarkTestString{n}",
      expression: "{n}+1",
      verify: true,
      workers: 0,
      workerMode: "thread",
    });
    assertEquals(report.settings.target, `10.77.0.2:${port}`);
    assertEquals(
      { requests: report.summary.requests, answered: report.summary.answered },
      { requests: 2000, answered: 2000 },
    );
    assertEquals(report.summary.errors, 0);
  } finally {
    server?.kill("SIGTERM");
    await server?.status;
    await server?.stdout.cancel().catch(() => {});
    await sh(`ip netns del ${ns}`);
  }
});
