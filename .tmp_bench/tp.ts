import { launch } from "../taskserver/bench.ts";
import { throughput } from "../taskserver/load_bench.ts";
const entry = new URL("../taskserver/main.ts", import.meta.url).pathname;
const specs = [
  { label: "async", kind: "taskserver", mode: "async" },
  { label: "thread pool", kind: "taskserver", mode: "thread", workers: 2 },
  { label: "python thread", kind: "python", python: "thread" },
] as const;
for (const workers of [0, 2]) {
  for (const spec of specs) {
    const server = await launch(spec as never, 0, entry);
    try {
      const r = await throughput(spec.label, server.port, 100, 2000, { workers });
      console.log(workers, spec.label, r.rps, r.p99Ms, r.errors, (await Deno.readTextFile("/proc/pressure/cpu")).split("\n")[0]);
    } finally { await server.stop(); }
  }
}
