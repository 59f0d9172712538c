#include "maestro/checkpoint/torch_bridge.h"

#include <cstring>

namespace maestro::checkpoint {
namespace {

struct DTypePair {
  DType ours;
  torch::ScalarType torch_type;
};

constexpr DTypePair kPairs[] = {
    {DType::kF64, torch::kFloat64}, {DType::kF32, torch::kFloat32},
    {DType::kF16, torch::kFloat16}, {DType::kBF16, torch::kBFloat16},
    {DType::kI64, torch::kInt64},   {DType::kI32, torch::kInt32},
    {DType::kI16, torch::kInt16},   {DType::kI8, torch::kInt8},
    {DType::kU8, torch::kUInt8},    {DType::kBool, torch::kBool},
};

torch::ScalarType TorchType(DType dtype) {
  for (const auto& pair : kPairs) {
    if (pair.ours == dtype) return pair.torch_type;
  }
  throw Error(InternalError("unmapped dtype"));
}

std::string Sizes(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

torch::Tensor ToTorch(const Tensor& tensor) {
  auto out = torch::empty(tensor.shape, torch::TensorOptions().dtype(TorchType(tensor.dtype)));
  if (!tensor.bytes.empty()) std::memcpy(out.data_ptr(), tensor.bytes.data(), tensor.bytes.size());
  return out;
}

Result<Tensor> FromTorch(const torch::Tensor& tensor) {
  Tensor out;
  bool known = false;
  for (const auto& pair : kPairs) {
    if (pair.torch_type == tensor.scalar_type()) {
      out.dtype = pair.ours;
      known = true;
    }
  }
  if (!known) {
    return InvalidArgumentError(std::string("safetensors has no dtype for ") +
                                c10::toString(tensor.scalar_type()));
  }
  auto host = tensor.detach().to(torch::kCPU).contiguous();
  out.shape.assign(host.sizes().begin(), host.sizes().end());
  out.bytes.assign(static_cast<const char*>(host.data_ptr()), host.nbytes());
  return out;
}

Result<TensorMap> StateDict(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    MAESTRO_ASSIGN_OR_RETURN(out[item.key()], FromTorch(item.value()));
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    MAESTRO_ASSIGN_OR_RETURN(out[item.key()], FromTorch(item.value()));
  }
  return out;
}

Status LoadStateDict(torch::nn::Module& module, const TensorMap& tensors) {
  std::map<std::string, torch::Tensor> targets;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    targets[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    targets[item.key()] = item.value();

  // Every problem is counted; the message lists them up to about 4 KB and says how many more.
  std::string problems;
  int64_t count = 0, listed = 0;
  auto note = [&](const std::string& what) {
    ++count;
    if (problems.size() < 4000) {
      problems += (problems.empty() ? "" : "; ") + what;
      ++listed;
    }
  };
  for (const auto& [name, target] : targets) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      note("missing '" + name + "'");
      continue;
    }
    std::vector<int64_t> want(target.sizes().begin(), target.sizes().end());
    if (it->second.shape != want) {
      note("'" + name + "' has shape " + Sizes(it->second.shape) + ", the model wants " +
           Sizes(want));
    }
  }
  for (const auto& [name, tensor] : tensors) {
    if (!targets.count(name)) note("unexpected '" + name + "'");
  }
  if (count > 0) {
    return InvalidArgumentError(
        "state dict does not fit the model (" + std::to_string(count) + " problems): " + problems +
        (listed < count ? "; and " + std::to_string(count - listed) + " more" : ""));
  }

  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) target.copy_(ToTorch(tensors.at(name)));
  return OkStatus();
}

}  // namespace maestro::checkpoint
