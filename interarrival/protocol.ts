/**
 * The study's wire format: the server greets each connection with one line, the
 * client sends newline-delimited `Worker W, Event E, Timestamp T` messages.
 * Pure functions.
 *
 * @module
 */

/** The line the server sends first on every connection (the study's words). */
export const GREETING = "Hello! You are connected to the server.";

/** Default TCP port (the study's). */
export const DEFAULT_PORT = 55000;

/** Default cap on one message's length in bytes; longer lines close the connection. */
export const DEFAULT_MAX_LINE = 64 * 1024;

/** One message a client worker sends; `timestamp` is epoch milliseconds. */
export function formatEvent(worker: number, event: number, timestamp: number): string {
  return `Worker ${worker}, Event ${event}, Timestamp ${timestamp.toFixed(3)}`;
}

/** The fields of a well-formed message, or null for any other text. */
export function parseEvent(
  text: string,
): { worker: number; event: number; timestamp: number } | null {
  const match = /^Worker (\d+),? Event (\d+), Timestamp (\d+(?:\.\d+)?)$/.exec(text);
  if (!match) return null;
  return { worker: Number(match[1]), event: Number(match[2]), timestamp: Number(match[3]) };
}

/** The study's verbose line for a received message. */
export function formatSentence(text: string, remote: string): string {
  return `Sentence "${text}" received from ${remote}`;
}

/** `host:port`, with brackets around IPv6 hosts. */
export function formatAddress(address: { hostname: string; port: number }): string {
  return address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
}
