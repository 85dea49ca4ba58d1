// Declarations of every CPU kernel; registry.cc lists them by name. Each takes the
// buffers (outputs first) and attributes documented for it in binding.d.ts.
#pragma once

#include "../core/kernel.h"

namespace deepnode::cpu {

// creation.cc
void fill(KernelCall& call);
void cast(KernelCall& call);
void randUniform(KernelCall& call);
void randNormal(KernelCall& call);
void dropout(KernelCall& call);

// elementwise.cc
void unary(KernelCall& call);
void binary(KernelCall& call);
void where(KernelCall& call);
void expand(KernelCall& call);
void permute(KernelCall& call);

// reduce.cc
void reduce(KernelCall& call);
void argReduce(KernelCall& call);
void norms(KernelCall& call);  // the p-norm of each of many tensors
void softmax(KernelCall& call);
void softmaxBackward(KernelCall& call);

// index.cc
void gather(KernelCall& call);
void scatterAdd(KernelCall& call);
void nllLoss(KernelCall& call);
void checkRange(KernelCall& call);
void nllLossBackward(KernelCall& call);

// optim.cc
void sgdStep(KernelCall& call);
void sgdSteps(KernelCall& call);  // many params, one firstStep
void adamStep(KernelCall& call);
void adamSteps(KernelCall& call);     // many params, one step count
void scaleInPlace(KernelCall& call);  // many tensors times one factor (gradient clipping)
void rmspropStep(KernelCall& call);
void rmspropSteps(KernelCall& call);  // many params
void adagradStep(KernelCall& call);
void adagradSteps(KernelCall& call);  // many params, one step count

// matmul.cc (over gemm.h)
void matmul(KernelCall& call);

// conv.cc
void conv2d(KernelCall& call);
void conv2dBackwardData(KernelCall& call);
void conv2dBackwardWeight(KernelCall& call);

// pool.cc
void maxPool2d(KernelCall& call);
void maxPool2dBackward(KernelCall& call);

// rnn.cc
void rnnForward(KernelCall& call);
void rnnBackward(KernelCall& call);

// slice.cc
void slice(KernelCall& call);
void sliceAssign(KernelCall& call);
// norm.cc
void batchNorm(KernelCall& call);
void batchNormBackward(KernelCall& call);
void layerNorm(KernelCall& call);
void layerNormBackward(KernelCall& call);

// embedding.cc
void embedding(KernelCall& call);
void embeddingBackward(KernelCall& call);

// attention.cc
void maskedSoftmax(KernelCall& call);
// avgpool.cc
void avgPool2d(KernelCall& call);
void avgPool2dBackward(KernelCall& call);
void adaptiveAvgPool2d(KernelCall& call);
void adaptiveAvgPool2dBackward(KernelCall& call);

// ctc.cc
void ctcLoss(KernelCall& call);
void ctcLossBackward(KernelCall& call);

// fused_attention.cc
void fusedAttention(KernelCall& call);
void fusedAttentionBackward(KernelCall& call);

}  // namespace deepnode::cpu
