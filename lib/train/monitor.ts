// What a run shows while it trains: a progress bar per epoch (cli-progress) with the loss,
// the throughput and the time left, drawn only on a terminal; and the epoch records
// appended to a JSON-lines file, one object per line.

import { Presets, SingleBar } from "cli-progress";
import * as fs from "node:fs";
import { dirname } from "node:path";

import { makeFoldersSync, writeFileAtomicSync } from "../io/safetensors.js";

/** A bar for one epoch at a time; does nothing when disabled or when stderr is no terminal. */
export class EpochProgress {
  private readonly bar: SingleBar | null;

  constructor(enabled: boolean, stream: NodeJS.WriteStream = process.stderr) {
    this.bar =
      enabled && stream.isTTY === true
        ? new SingleBar(
            {
              format:
                "  epoch {epoch} {bar} {value}/{total} | loss {loss} | {speed} samples/s" +
                " | {eta_formatted} left",
              stream,
              hideCursor: true,
              clearOnComplete: true,
            },
            Presets.shades_classic,
          )
        : null;
  }

  get active(): boolean {
    return this.bar !== null;
  }

  start(epoch: string, batches: number): void {
    this.bar?.start(batches, 0, { epoch, loss: "-", speed: "-" });
  }

  update(batch: number, loss: number | undefined, samplesPerSecond: number): void {
    const payload = { speed: Math.round(samplesPerSecond).toString() };
    this.bar?.update(batch, loss === undefined ? payload : { ...payload, loss: loss.toFixed(4) });
  }

  stop(): void {
    this.bar?.stop();
  }
}

/** Appends one JSON object per line to `path`. */
export class JsonLines {
  constructor(readonly path: string) {
    makeFoldersSync(dirname(path));
  }

  append(record: object): void {
    fs.appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }

  /**
   * Keeps only the lines that `keep` accepts (a resumed run drops what the killed run
   * wrote after its checkpoint), rewriting the file atomically.
   */
  filter(keep: (record: Record<string, unknown>) => boolean): void {
    if (!fs.existsSync(this.path)) return;
    const lines = fs.readFileSync(this.path, "utf8").split("\n");
    const kept = lines.filter((line) => {
      if (line.trim() === "") return false;
      try {
        return keep(JSON.parse(line) as Record<string, unknown>);
      } catch {
        return false; // a line cut short by a kill
      }
    });
    const text = kept.map((line) => `${line}\n`).join("");
    writeFileAtomicSync(this.path, [Buffer.from(text)]);
  }
}
