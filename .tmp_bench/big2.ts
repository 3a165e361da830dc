import { launch } from "../taskserver/bench.ts";
import { runLoad } from "../taskserver/load.ts";
import { parseMix } from "../taskserver/load_plan.ts";
const server = await launch({ label: "async", kind: "taskserver", mode: "async" }, 3000, new URL("../taskserver/main.ts", import.meta.url).pathname);
const workers = Number(Deno.args[0] ?? 4);
try {
  const r = await runLoad({ host: "127.0.0.1", port: server.port, connections: 10000, rate: null, pipeline: 1, warmupMs: 0, durationMs: null, requests: null, requestsPerConnection: 1, timeoutMs: 60000, framing: "line", mix: parseMix("3"), payload: "BenchmarkTestString123", expression: "", verify: true, workers, workerMode: "thread" });
  const s = r.summary;
  console.log(workers, s.seconds, s.answered, s.errors, "connect", JSON.stringify(s.connectMs), "lat", s.latencyMs.p50, s.latencyMs.max, r.measured.timeline.map(t=>t.sent).join(","));
} finally { await server.stop(); }
console.log((await Deno.readTextFile("/proc/pressure/cpu")).split("\n")[0]);
