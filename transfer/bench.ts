/**
 * `transfer bench`: throughput of STEP uploads and downloads in every client mode,
 * beside a raw TCP copy of the same bytes measured in the same run (the ceiling),
 * plus iperf3 when installed; and `measureStudy`, the measurements of the seed
 * study (study.ts holds its plans, published table and pure report). This
 * module only measures: tables and sentences are built elsewhere.
 *
 * The server runs in a child process (shared/server.ts, process mode, one
 * worker), so the client and the server each have a core, as on two machines.
 *
 * @module
 */
import type { Mode } from "../shared/mode.ts";
import { median } from "../shared/stats.ts";
import type { LinePlot, ReportTable } from "../shared/report.ts";
import { formatSize } from "./protocol.ts";
import { simpleRequest } from "./client.ts";
import {
  iperf3,
  makeFile,
  mbps,
  openLab,
  rawCopy,
  repeat,
  round,
  serverPeakRssMb,
  timeDownload,
  timeUpload,
} from "./bench_lab.ts";

export { makeFile } from "./bench_lab.ts";
export { measureStudy } from "./study_measure.ts";
export { STUDY_BLOCKS, studySweepSizes } from "./study.ts";

/** Options of the free-form benchmark. */
export interface BenchOptions {
  sizes: number[];
  modes: Mode[];
  streams: number;
  window: number;
  blockSizes: number[];
  runs: number;
  directions: ("upload" | "download")[];
  iperf: boolean;
  entry?: string | URL;
  onProgress?: (line: string) => void;
  /** Aborted (SIGINT/SIGTERM): stop after the configuration running and return the rows so far. */
  signal?: AbortSignal;
}

/** One measured configuration. */
export interface BenchRow {
  direction: string;
  size: number;
  blockSize: number | null;
  mode: string;
  streams: number;
  runs: number;
  medianMs: number;
  mbPerS: number;
  /** Throughput as a fraction of the raw TCP copy of the same bytes. */
  ofRawTcp: number | null;
}

/** Result of {@linkcode runBench}. */
export interface BenchResult {
  rows: BenchRow[];
  serverPeakRssMb: number | null;
  skipped: string[];
  elapsedMs: number;
  /** True when a signal stopped the run before every configuration was measured. */
  interrupted: boolean;
}

/** Runs the free-form benchmark. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const started = performance.now();
  const status = options.onProgress ?? (() => {});
  const rows: BenchRow[] = [];
  const skipped: string[] = [];
  const lab = await openLab(options.entry);
  const stopped = () => options.signal?.aborted === true;
  try {
    for (const size of options.sizes) {
      if (stopped()) break;
      const path = `${lab.dir}/input-${size}`;
      await makeFile(path, size);
      if (size === options.sizes[0]) await rawCopy(lab, path); // warm-up: the sink's first connection
      const raw = median(await repeat(options.runs, () => rawCopy(lab, path)));
      const rawRate = mbps(size, raw);
      rows.push({
        direction: "raw TCP copy",
        size,
        blockSize: null,
        mode: "ceiling",
        streams: 1,
        runs: options.runs,
        medianMs: round(raw),
        mbPerS: rawRate,
        ofRawTcp: 1,
      });
      status(`${formatSize(size)} raw TCP copy: ${rawRate} MB/s`);
      if (options.iperf) {
        const rate = await iperf3(size);
        if (rate === null) skipped.push("iperf3: not installed or failed");
        else {
          rows.push({
            direction: "iperf3",
            size,
            blockSize: null,
            mode: "single stream",
            streams: 1,
            runs: 1,
            medianMs: round((size / 1e6 / rate) * 1000),
            mbPerS: rate,
            ofRawTcp: round(rate / rawRate, 2),
          });
        }
      }
      for (const blockSize of options.blockSizes) {
        const storedKey = `bench-stored-${size}-${blockSize}`;
        let stored = false;
        for (const mode of options.modes) {
          const spec = { mode, streams: options.streams, window: options.window, blockSize };
          for (const direction of options.directions) {
            if (stopped()) break;
            let samples: number[];
            if (direction === "upload") {
              samples = await repeat(options.runs, () => timeUpload(lab, path, spec));
            } else {
              if (!stored) {
                await timeUpload(lab, path, { ...spec, mode: "async" }, storedKey);
                stored = true;
              }
              samples = await repeat(options.runs, () => timeDownload(lab, storedKey, spec));
            }
            const ms = median(samples);
            const rate = mbps(size, ms);
            rows.push({
              direction,
              size,
              blockSize,
              mode,
              streams: mode === "thread" || mode === "process" ? options.streams : 1,
              runs: options.runs,
              medianMs: round(ms),
              mbPerS: rate,
              ofRawTcp: round(rate / rawRate, 2),
            });
            status(`${formatSize(size)} ${direction} ${mode} block ${blockSize}: ${rate} MB/s`);
          }
        }
        if (stored) {
          await simpleRequest(
            { host: "127.0.0.1", port: lab.server.port, id: "bench" },
            "FILE",
            "DELETE",
            { key: storedKey },
          );
        }
      }
      await Deno.remove(path);
    }
    return {
      rows,
      serverPeakRssMb: serverPeakRssMb(lab),
      skipped,
      elapsedMs: performance.now() - started,
      interrupted: stopped(),
    };
  } finally {
    await lab.close();
  }
}

/** The bench rows as a table. */
export function benchTable(result: BenchResult): ReportTable {
  return {
    title: "Throughput (medians)",
    columns: [
      "direction",
      "size",
      "block",
      "mode",
      "streams",
      "runs",
      "median s",
      "MB/s",
      "× raw TCP",
    ],
    rows: result.rows.map((row) => [
      row.direction,
      formatSize(row.size),
      row.blockSize,
      row.mode,
      row.streams,
      row.runs,
      round(row.medianMs / 1000, 4),
      row.mbPerS,
      row.ofRawTcp,
    ]),
  };
}

/** Throughput-by-size plots, one line per mode and block size. */
export function benchPlots(result: BenchResult): LinePlot[] {
  const plots: LinePlot[] = [];
  for (const direction of ["upload", "download"]) {
    const points = result.rows
      .filter((row) => row.direction === direction || row.direction === "raw TCP copy")
      .map((row) => ({
        x: row.size / 1e6,
        y: row.mbPerS,
        series: row.blockSize === null ? row.direction : `${row.mode} (${row.blockSize} B)`,
      }));
    if (points.some((p) => p.series !== "raw TCP copy")) {
      plots.push({
        title: `${direction} throughput by size`,
        xLabel: "file size (MB)",
        yLabel: "MB/s",
        points,
        xLog: true,
      });
    }
  }
  return plots;
}
