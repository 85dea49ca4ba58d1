// A Parameter is a leaf tensor that a Module owns and an optimizer updates.

import { Tensor } from "../tensor.js";

export class Parameter extends Tensor {
  /** Takes over `data`'s storage (no copy); requires grad unless told otherwise. */
  constructor(data: Tensor, requiresGrad = true) {
    super(data.storage, data.shape, data.dtype, data.device);
    if (requiresGrad) this.requiresGrad_(true);
  }
}
