// The library's one logger: quiet unless DEEPNODE_LOG=info|debug; warnings go to
// process.emitWarning once per code.

type Level = "silent" | "info" | "debug";

function levelFromEnv(): Level {
  const value = process.env.DEEPNODE_LOG;
  return value === "info" || value === "debug" ? value : "silent";
}

const level = levelFromEnv();
const warned = new Set<string>();

/** Whether info lines are printed (so a caller can skip gathering what it would print). */
export function infoEnabled(): boolean {
  return level !== "silent";
}

export function info(message: string): void {
  if (level !== "silent") process.stderr.write(`[deepnode] ${message}\n`);
}

export function debug(message: string): void {
  if (level === "debug") process.stderr.write(`[deepnode:debug] ${message}\n`);
}

/** Emits a warning once per code. */
export function warnOnce(code: string, message: string): void {
  if (warned.has(code)) return;
  warned.add(code);
  process.emitWarning(message, { code, type: "DeepnodeWarning" });
}
