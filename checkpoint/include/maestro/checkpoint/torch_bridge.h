// Conversions between safetensors byte tensors (safetensors.h) and LibTorch, and state-dict
// load / save for any torch::nn::Module. Kept apart from safetensors.h so that code which only
// moves bytes (the coordinator, the RPC libraries) never sees torch's headers.
#pragma once

#include <torch/torch.h>

#include "maestro/checkpoint/safetensors.h"
#include "maestro/shared/status.h"

namespace maestro::checkpoint {

// A CPU tensor holding a copy of the bytes.
torch::Tensor ToTorch(const Tensor& tensor);

// A copy of `tensor` (moved to the CPU, made contiguous). INVALID_ARGUMENT for a dtype the
// format has no name for (complex, quantized).
Result<Tensor> FromTorch(const torch::Tensor& tensor);

// Every parameter and buffer of `module` under its dotted name, copied to the CPU.
Result<TensorMap> StateDict(const torch::nn::Module& module);

// Copies `tensors` into the module's parameters and buffers, converting dtype and device.
// Strict: INVALID_ARGUMENT names the missing tensors, the unexpected ones and any shape
// mismatch, and nothing is modified unless every check passes.
Status LoadStateDict(torch::nn::Module& module, const TensorMap& tensors);

}  // namespace maestro::checkpoint
