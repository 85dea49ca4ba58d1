// Text to token ids: a word-level Vocabulary built from a corpus (saved with the model as
// JSON), Hugging Face tokenizer.json files (WordPiece, BPE, ...) through the
// @huggingface/tokenizers library, and encodeBatch, which pads and truncates a batch of
// texts into an int32 [batch, length] tensor with its attention mask and true lengths.

import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

import { Tokenizer } from "@huggingface/tokenizers";

import { FormatError, ValueError } from "../errors.js";
import { fromTypedArray, type Tensor } from "../tensor.js";

/** Anything that turns one text into token ids. */
export interface TextTokenizer {
  /** The id that fills padded positions. */
  readonly padId: number;
  /** How many ids there are (embedding tables need this many rows). */
  readonly size: number;
  /** The ids of one text, with no padding and no truncation. */
  encode(text: string): number[];
}

// A word is a run of letters and digits, with apostrophes inside ("don't"); every other
// non-space character is a token of its own, so "great!" gives "great" and "!".
const WORD_PATTERN = /[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu;

/** The words and punctuation marks of `text`, lowercased unless told otherwise. */
export function wordTokens(text: string, lowercase = true): string[] {
  return (lowercase ? text.toLowerCase() : text).match(WORD_PATTERN) ?? [];
}

export interface VocabularyOptions {
  /** Most ids in all, the two special tokens included (default: every word kept). */
  maxSize?: number;
  /** Words seen fewer times than this map to <unk> (default 1). */
  minFreq?: number;
  /** Lowercase before counting and encoding (default true). */
  lowercase?: boolean;
}

export interface VocabularyJSON {
  format: "deepnode.vocabulary";
  version: 1;
  lowercase: boolean;
  tokens: string[];
}

function positiveInteger(op: string, name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new ValueError(op, `${name} must be an integer >= ${min}, got ${value}`, name);
  }
  return value;
}

/** Word-level vocabulary: id 0 is <pad>, id 1 is <unk>, then words by falling frequency. */
export class Vocabulary implements TextTokenizer {
  static readonly PAD = "<pad>";
  static readonly UNK = "<unk>";
  readonly padId = 0;
  readonly unkId = 1;
  /** Id -> token. */
  readonly tokens: readonly string[];
  readonly lowercase: boolean;
  private readonly ids: Map<string, number>;

  constructor(words: readonly string[], lowercase = true) {
    this.tokens = [Vocabulary.PAD, Vocabulary.UNK, ...words];
    this.lowercase = lowercase;
    this.ids = new Map(this.tokens.map((token, id) => [token, id]));
    if (this.ids.size !== this.tokens.length) {
      throw new ValueError("Vocabulary", "tokens must be distinct and not <pad> or <unk>", "words");
    }
  }

  /**
   * Counts the words of `texts` and keeps the most frequent; ties are broken by the
   * word's first appearance, so the same corpus always gives the same ids.
   */
  static build(texts: Iterable<string>, options: VocabularyOptions = {}): Vocabulary {
    const maxSize = positiveInteger("Vocabulary.build", "maxSize", options.maxSize ?? 2 ** 31, 2);
    const minFreq = positiveInteger("Vocabulary.build", "minFreq", options.minFreq ?? 1, 1);
    const lowercase = options.lowercase ?? true;
    const counts = new Map<string, number>();
    for (const text of texts) {
      for (const word of wordTokens(text, lowercase)) counts.set(word, (counts.get(word) ?? 0) + 1);
    }
    counts.delete(Vocabulary.PAD);
    counts.delete(Vocabulary.UNK);
    const order = [...counts.entries()].filter(([, count]) => count >= minFreq);
    order.sort((a, b) => b[1] - a[1]); // stable: equal counts keep first-appearance order
    return new Vocabulary(
      order.slice(0, maxSize - 2).map(([word]) => word),
      lowercase,
    );
  }

  get size(): number {
    return this.tokens.length;
  }

  /** The id of a token, or unkId when it is not in the vocabulary. */
  id(token: string): number {
    return this.ids.get(token) ?? this.unkId;
  }

  encode(text: string): number[] {
    return wordTokens(text, this.lowercase).map((word) => this.id(word));
  }

  /** The tokens of `ids`; an id outside the vocabulary is a ValueError. */
  decode(ids: ArrayLike<number>): string[] {
    return Array.from(ids, (id) => {
      const token = this.tokens[id];
      if (token === undefined) {
        throw new ValueError("Vocabulary.decode", `id ${id} is outside [0, ${this.size})`, "ids");
      }
      return token;
    });
  }

  toJSON(): VocabularyJSON {
    return {
      format: "deepnode.vocabulary",
      version: 1,
      lowercase: this.lowercase,
      tokens: [...this.tokens],
    };
  }

  /** Reads what toJSON wrote; anything else is a FormatError naming the field. */
  static fromJSON(json: unknown): Vocabulary {
    const value = json as Partial<VocabularyJSON> | null;
    const fail = (what: string): never => {
      throw new FormatError("Vocabulary.fromJSON", what);
    };
    if (value === null || typeof value !== "object") fail("expected an object");
    if (value!.format !== "deepnode.vocabulary" || value!.version !== 1) {
      fail(
        `format must be "deepnode.vocabulary" version 1, got ${value!.format} ${value!.version}`,
      );
    }
    if (typeof value!.lowercase !== "boolean") fail("lowercase must be a boolean");
    const tokens = value!.tokens;
    if (!Array.isArray(tokens) || tokens.some((token) => typeof token !== "string")) {
      fail("tokens must be an array of strings");
    }
    if (tokens![0] !== Vocabulary.PAD || tokens![1] !== Vocabulary.UNK) {
      fail(`tokens must start with ${Vocabulary.PAD} and ${Vocabulary.UNK}`);
    }
    return new Vocabulary(tokens!.slice(2), value!.lowercase);
  }
}

function readJson(path: string, op: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new FormatError(op, `${path}: ${(error as Error).message}`, path);
  }
}

interface TokenizerConfig {
  pad_token?: string | { content?: string };
}

/** A Hugging Face tokenizer (tokenizer.json, with tokenizer_config.json when present). */
export class HfTokenizer implements TextTokenizer {
  readonly padId: number;
  readonly size: number;
  private readonly tokenizer: Tokenizer;

  constructor(tokenizerJson: object, config: object = {}) {
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (error) {
      throw new FormatError(
        "HfTokenizer",
        `not a usable tokenizer.json: ${(error as Error).message}`,
      );
    }
    this.size = this.tokenizer.get_vocab().size;
    this.padId = HfTokenizer.findPadId(this.tokenizer, tokenizerJson, config as TokenizerConfig);
  }

  /** Reads `path`: a tokenizer.json, or a folder holding one. */
  static fromFile(path: string): HfTokenizer {
    const file =
      existsSync(path) && statSync(path).isDirectory() ? join(path, "tokenizer.json") : path;
    if (!existsSync(file)) {
      throw new FormatError("HfTokenizer.fromFile", `${file} does not exist`, file);
    }
    const configFile = join(dirname(file), "tokenizer_config.json");
    const config = existsSync(configFile) ? readJson(configFile, "HfTokenizer.fromFile") : {};
    return new HfTokenizer(readJson(file, "HfTokenizer.fromFile") as object, config as object);
  }

  // The pad token the config names, else tokenizer.json's padding setting, else a token
  // spelled [PAD] or <pad>; -1 when there is none (encodeBatch then refuses to pad).
  private static findPadId(tokenizer: Tokenizer, json: object, config: TokenizerConfig): number {
    const pad = config.pad_token;
    const named = typeof pad === "string" ? pad : pad?.content;
    const namedId = named === undefined ? undefined : tokenizer.token_to_id(named);
    if (namedId !== undefined) return namedId;
    const padding = (json as { padding?: { pad_id?: unknown } | null }).padding;
    if (typeof padding?.pad_id === "number") return padding.pad_id;
    return tokenizer.token_to_id("[PAD]") ?? tokenizer.token_to_id("<pad>") ?? -1;
  }

  /** The ids of one text, with the special tokens the tokenizer adds ([CLS], [SEP], ...). */
  encode(text: string): number[] {
    return this.tokenizer.encode(text).ids;
  }

  /** The token strings of one text, without special tokens. */
  tokenize(text: string): string[] {
    return this.tokenizer.tokenize(text);
  }

  decode(ids: number[], skipSpecialTokens = true): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }
}

export interface EncodeBatchOptions {
  /** Longest kept sequence; longer ones are truncated (default: no limit). */
  maxLength?: number;
  /** "longest" pads to the batch's longest sequence, "maxLength" to maxLength. */
  padding?: "longest" | "maxLength";
  /** Where pads go (default "right"). */
  paddingSide?: "left" | "right";
  /** Which end of a long sequence is cut (default "right": the first tokens are kept). */
  truncationSide?: "left" | "right";
}

export interface EncodedBatch {
  /** int32 [batch, length]. */
  inputIds: Tensor;
  /** int32 [batch, length]: 1 at real tokens, 0 at padding (Hugging Face's convention). */
  attentionMask: Tensor;
  /** The number of real tokens of each text, after truncation. */
  lengths: Int32Array;
}

function checkBatchOptions(options: EncodeBatchOptions): void {
  const op = "encodeBatch";
  if (options.maxLength !== undefined) positiveInteger(op, "maxLength", options.maxLength, 1);
  const choices: [keyof EncodeBatchOptions, string[]][] = [
    ["padding", ["longest", "maxLength"]],
    ["paddingSide", ["left", "right"]],
    ["truncationSide", ["left", "right"]],
  ];
  for (const [name, allowed] of choices) {
    const value = options[name];
    if (value !== undefined && !allowed.includes(value as string)) {
      throw new ValueError(op, `${name} must be one of ${allowed.join(", ")}, got ${value}`, name);
    }
  }
  if (options.padding === "maxLength" && options.maxLength === undefined) {
    throw new ValueError(op, 'padding "maxLength" needs maxLength', "maxLength");
  }
}

/** Encodes, truncates and pads `texts` into one batch of equal-length rows. */
export function encodeBatch(
  tokenizer: TextTokenizer,
  texts: readonly string[],
  options: EncodeBatchOptions = {},
): EncodedBatch {
  checkBatchOptions(options);
  if (texts.length === 0) throw new ValueError("encodeBatch", "texts is empty", "texts");
  const maxLength = options.maxLength ?? Infinity;
  const cutLeft = options.truncationSide === "left";
  const sequences = texts.map((text) => {
    const ids = tokenizer.encode(text);
    if (ids.length <= maxLength) return ids;
    return cutLeft ? ids.slice(ids.length - maxLength) : ids.slice(0, maxLength);
  });
  const lengths = Int32Array.from(sequences, (ids) => ids.length);
  const longest = lengths.reduce((most, length) => Math.max(most, length), 0);
  const width = options.padding === "maxLength" ? maxLength : longest;
  if (tokenizer.padId < 0 && lengths.some((length) => length < width)) {
    throw new ValueError(
      "encodeBatch",
      "the tokenizer has no pad token, so it cannot pad",
      "texts",
    );
  }
  const ids = new Int32Array(texts.length * width).fill(tokenizer.padId);
  const mask = new Int32Array(texts.length * width);
  sequences.forEach((sequence, row) => {
    const start = row * width + (options.paddingSide === "left" ? width - sequence.length : 0);
    ids.set(sequence, start);
    mask.fill(1, start, start + sequence.length);
  });
  const shape = [texts.length, width];
  return {
    inputIds: fromTypedArray(ids, shape),
    attentionMask: fromTypedArray(mask, shape),
    lengths,
  };
}
