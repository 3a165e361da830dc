import { launch } from "../taskserver/bench.ts";
import { inProcessClients } from "./old_loadgen.ts";
const server = await launch({ label: "async", kind: "taskserver", mode: "async" }, 3000, new URL("../taskserver/main.ts", import.meta.url).pathname);
try {
  const run = await inProcessClients(server.port, 10000, false, 60000);
  console.log("old", JSON.stringify(run));
} finally { await server.stop(); }
console.log((await Deno.readTextFile("/proc/pressure/cpu")).split("\n")[0]);
