// nn.utils: gradient clipping (the functions live in optim/clip.ts) under PyTorch's path.
export { clipGradNorm, clipGradNormTensor, clipGradValue, totalGradNorm } from "../optim/clip.js";
export type { ClipGradNormOptions } from "../optim/clip.js";
