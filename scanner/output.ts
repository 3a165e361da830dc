/**
 * Renderings of a scan: an nmap-like table with a summary line, CSV and a
 * grepable one-line-per-host format. Pure functions over results. (The `--json`
 * results are in `records.ts`: a plain scan never loads what only they need.)
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";
import { PORT_STATES, type PortState } from "./verdict.ts";
import type { HostResult, PortResult, ScanResult } from "./scan_result.ts";
import type { UnresolvedTarget } from "./targets.ts";

/** Parses `--show`: `open`, `all`, or a comma list of states. */
export function parseShow(text: string): PortState[] {
  const parts = text.split(",").map((part) => part.trim().toLowerCase()).filter((p) => p !== "");
  if (parts.length === 0) throw new UsageError(`Invalid --show '${text}': the list is empty`);
  if (parts.length === 1 && parts[0] === "all") return [...PORT_STATES];
  for (const part of parts) {
    if (!(PORT_STATES as readonly string[]).includes(part)) {
      throw new UsageError(
        `Invalid --show '${text}': '${part}' is not one of all, ${PORT_STATES.join(", ")}`,
      );
    }
  }
  return PORT_STATES.filter((state) => parts.includes(state));
}

/** The ports of `host` whose state `--show` lists. */
export function shownPorts(host: HostResult, show: PortState[]): PortResult[] {
  return host.ports.filter((port) => show.includes(port.state));
}

function hostLabel(host: HostResult): string {
  return host.target === host.address ? host.address : `${host.target} (${host.address})`;
}

/** A banner cut to fit a table row. */
function shortBanner(banner: string | null | undefined): string {
  if (!banner) return "";
  return banner.length > 60 ? banner.slice(0, 59) + "…" : banner;
}

/** `3 open, 1020 closed, 1 filtered`. */
export function countsText(counts: Record<PortState, number>): string {
  return PORT_STATES.map((state) => `${counts[state]} ${state}`).join(", ");
}

/** nmap-like text: per host a `PORT STATE SERVICE REASON` table, then summary lines. */
export function formatTable(
  result: ScanResult,
  show: PortState[],
  unresolved: UnresolvedTarget[] = [],
): string {
  const lines: string[] = [];
  for (const item of unresolved) lines.push(`Failed to resolve "${item.target}": ${item.reason}`);
  for (const host of result.hosts) {
    lines.push(`Scan report for ${hostLabel(host)}`);
    const shown = shownPorts(host, show);
    const hidden = PORT_STATES.filter((state) => !show.includes(state) && host.counts[state] > 0);
    if (hidden.length > 0) {
      lines.push(
        `Not shown: ${hidden.map((state) => `${host.counts[state]} ${state}`).join(", ")} ports`,
      );
    }
    if (shown.length > 0) {
      const banners = shown.some((port) => port.banner !== undefined);
      const rows = shown.map((port) => [
        `${port.port}/tcp`,
        port.state,
        port.service ?? "unknown",
        port.reason,
        ...(banners ? [shortBanner(port.banner)] : []),
      ]);
      const head = ["PORT", "STATE", "SERVICE", "REASON", ...(banners ? ["BANNER"] : [])];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
      const fmt = (row: string[]) =>
        row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd();
      lines.push(fmt(head), ...rows.map(fmt));
    } else if (hidden.length === 0) {
      lines.push("No ports scanned.");
    }
    lines.push(
      `${host.address}: ${host.ports.length} ports scanned: ${countsText(host.counts)}`,
      "",
    );
  }
  const seconds = (result.elapsedMs / 1000).toFixed(2);
  lines.push(
    `Scanned ${result.hosts.length} host${result.hosts.length === 1 ? "" : "s"}, ` +
      `${result.probes} ports in ${seconds} s (${result.mode}` +
      (result.mode === "thread" || result.mode === "process" ? `, ${result.workers} workers` : "") +
      `, ${result.engine} engine, timeout ${result.timeoutMs} ms)` +
      (result.interrupted ? " (interrupted: partial results)" : ""),
  );
  return lines.join("\n") + "\n";
}

/** CSV: `host,address,port,state,reason,service`, one row per shown port. */
export function formatCsv(result: ScanResult, show: PortState[]): string {
  const quote = (text: string) => (/[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text);
  const banners = result.hosts.some((host) => host.ports.some((p) => p.banner !== undefined));
  const rows = ["host,address,port,state,reason,service" + (banners ? ",banner" : "")];
  for (const host of result.hosts) {
    for (const port of shownPorts(host, show)) {
      rows.push(
        [
          host.target,
          host.address,
          String(port.port),
          port.state,
          port.reason,
          port.service ?? "",
          ...(banners ? [port.banner ?? ""] : []),
        ].map(quote).join(","),
      );
    }
  }
  return rows.join("\n") + "\n";
}

/**
 * Grepable output, one line per host in nmap's `-oG` layout:
 * `Host: 10.0.0.1 (name)\tPorts: 22/open/tcp//ssh///, ...\tCounts: ...`.
 */
export function formatGrep(result: ScanResult, show: PortState[]): string {
  return result.hosts.map((host) => {
    const name = host.target === host.address ? "" : host.target;
    const ports = shownPorts(host, show)
      // The banner goes where nmap puts version text, with its separators replaced.
      .map((port) =>
        `${port.port}/${port.state}/tcp//${port.service ?? ""}//${
          (port.banner ?? "").replaceAll("/", "|").replaceAll(",", ";")
        }/`
      )
      .join(", ");
    return `Host: ${host.address} (${name})\tPorts: ${ports}\tCounts: ${countsText(host.counts)}`;
  }).join("\n") + "\n";
}
