/** Version of the toolkit, reported by every tool's `--version` and JSON documents. */
export const VERSION = "0.1.0";
