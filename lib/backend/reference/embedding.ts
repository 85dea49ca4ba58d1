// Embedding lookup and its gradient: rows of weight [numEmbeddings, dim] picked by int32
// indices [count]. Every index is checked before anything is written.

import type { RawTensor } from "../backend.js";
import { IndexError, ShapeError, formatShape } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";
import { expectShape } from "./strides.js";

function checkTable(op: string, table: RawTensor, indices: RawTensor, rows: RawTensor): void {
  requireDType(op, table.dtype, FLOAT_DTYPES);
  requireDType(op, indices.dtype, ["int32"]);
  requireSameDType(op, [table, rows]);
  if (table.shape.length !== 2 || indices.shape.length !== 1)
    throw new ShapeError(
      op,
      `expected a table [numEmbeddings, dim] and indices [count], got ` +
        `${formatShape(table.shape)} and ${formatShape(indices.shape)}`,
      [table.shape, indices.shape],
    );
  expectShape(op, "rows", rows.shape, [indices.shape[0]!, table.shape[1]!]);
  const numEmbeddings = table.shape[0]!;
  for (const index of elements(op, indices)) {
    if (index < 0 || index >= numEmbeddings)
      throw new IndexError(op, `index ${index} is out of bounds for ${numEmbeddings} embeddings`);
  }
}

/** out[k, :] = weight[indices[k], :]. */
export function embedding(out: RawTensor, weight: RawTensor, indices: RawTensor): void {
  const op = "embedding";
  checkTable(op, weight, indices, out);
  const dim = weight.shape[1]!;
  const [outValues, weightValues] = [elements(op, out), elements(op, weight)];
  elements(op, indices).forEach((index, k) => {
    for (let j = 0; j < dim; j++) outValues[k * dim + j] = weightValues[index * dim + j]!;
  });
}

/** gradWeight[indices[k], :] += gradOut[k, :] unless indices[k] is paddingIdx; not cleared. */
export function embeddingBackward(
  gradWeight: RawTensor,
  gradOut: RawTensor,
  indices: RawTensor,
  paddingIdx: number,
): void {
  const op = "embeddingBackward";
  checkTable(op, gradWeight, indices, gradOut);
  const dim = gradWeight.shape[1]!;
  const [gradValues, upstream] = [elements(op, gradWeight), elements(op, gradOut)];
  elements(op, indices).forEach((index, k) => {
    if (index === paddingIdx) return;
    for (let j = 0; j < dim; j++)
      gradValues[index * dim + j] = gradValues[index * dim + j]! + upstream[k * dim + j]!;
  });
}
