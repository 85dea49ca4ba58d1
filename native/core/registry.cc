// The manifest of native kernels: name -> function. binding.d.ts declares the same
// names (NativeKernels), and test/binding.test.ts checks that the two agree.
#include "../cpu/kernels.h"
#include "kernel.h"

namespace deepnode {

const std::map<std::string, KernelFn>& kernelTable() {
  static const std::map<std::string, KernelFn> table = {
      {"fill", cpu::fill},
      {"cast", cpu::cast},
      {"rand_uniform", cpu::randUniform},
      {"rand_normal", cpu::randNormal},
      {"dropout", cpu::dropout},
      {"unary", cpu::unary},
      {"binary", cpu::binary},
      {"where", cpu::where},
      {"expand", cpu::expand},
      {"permute", cpu::permute},
      {"reduce", cpu::reduce},
      {"arg_reduce", cpu::argReduce},
      {"norms", cpu::norms},
      {"matmul", cpu::matmul},
      {"conv2d", cpu::conv2d},
      {"conv2d_backward_data", cpu::conv2dBackwardData},
      {"conv2d_backward_weight", cpu::conv2dBackwardWeight},
      {"max_pool2d", cpu::maxPool2d},
      {"max_pool2d_backward", cpu::maxPool2dBackward},
      {"softmax", cpu::softmax},
      {"softmax_backward", cpu::softmaxBackward},
      {"gather", cpu::gather},
      {"scatter_add", cpu::scatterAdd},
      {"nll_loss", cpu::nllLoss},
      {"check_range", cpu::checkRange},
      {"nll_loss_backward", cpu::nllLossBackward},
      {"sgd_step", cpu::sgdStep},
      {"sgd_steps", cpu::sgdSteps},
      {"adam_step", cpu::adamStep},
      {"adam_steps", cpu::adamSteps},
      {"scale_in_place", cpu::scaleInPlace},
      {"rmsprop_step", cpu::rmspropStep},
      {"rmsprop_steps", cpu::rmspropSteps},
      {"adagrad_step", cpu::adagradStep},
      {"adagrad_steps", cpu::adagradSteps},
      {"rnn_forward", cpu::rnnForward},
      {"rnn_backward", cpu::rnnBackward},
      {"slice", cpu::slice},
      {"slice_assign", cpu::sliceAssign},
      {"batch_norm", cpu::batchNorm},
      {"batch_norm_backward", cpu::batchNormBackward},
      {"layer_norm", cpu::layerNorm},
      {"layer_norm_backward", cpu::layerNormBackward},
      {"embedding", cpu::embedding},
      {"embedding_backward", cpu::embeddingBackward},
      {"masked_softmax", cpu::maskedSoftmax},
      {"avg_pool2d", cpu::avgPool2d},
      {"avg_pool2d_backward", cpu::avgPool2dBackward},
      {"adaptive_avg_pool2d", cpu::adaptiveAvgPool2d},
      {"adaptive_avg_pool2d_backward", cpu::adaptiveAvgPool2dBackward},
      {"ctc_loss", cpu::ctcLoss},
      {"ctc_loss_backward", cpu::ctcLossBackward},
      {"fused_attention", cpu::fusedAttention},
      {"fused_attention_backward", cpu::fusedAttentionBackward},
  };
  return table;
}

}  // namespace deepnode
