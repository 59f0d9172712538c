#include "maestro/checkpoint/hf_vit_mae.h"

#include <array>
#include <optional>
#include <string_view>
#include <vector>

namespace maestro::checkpoint {
namespace {

struct NamePair {
  std::string_view hf;
  std::string_view official;
};

// Whole names outside the transformer blocks (the same in both layouts).
constexpr NamePair kTopLevel[] = {
    {"vit.embeddings.cls_token", "cls_token"},
    {"vit.embeddings.position_embeddings", "pos_embed"},
    {"vit.embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight"},
    {"vit.embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias"},
    {"vit.layernorm.weight", "norm.weight"},
    {"vit.layernorm.bias", "norm.bias"},
    {"decoder.decoder_embed.weight", "decoder_embed.weight"},
    {"decoder.decoder_embed.bias", "decoder_embed.bias"},
    {"decoder.mask_token", "mask_token"},
    {"decoder.decoder_pos_embed", "decoder_pos_embed"},
    {"decoder.decoder_norm.weight", "decoder_norm.weight"},
    {"decoder.decoder_norm.bias", "decoder_norm.bias"},
    {"decoder.decoder_pred.weight", "decoder_pred.weight"},
    {"decoder.decoder_pred.bias", "decoder_pred.bias"},
};

constexpr std::string_view kOfficialEncoderPrefix = "blocks.";
constexpr std::string_view kOfficialDecoderPrefix = "decoder_blocks.";
constexpr std::string_view kOfficialQkvPrefix = "attn.qkv.";

// Names inside one block, q/k/v excepted (module names; ".weight"/".bias" follow).
constexpr NamePair kHubInBlock[] = {
    {"layernorm_before", "norm1"}, {"attention.output.dense", "attn.proj"},
    {"layernorm_after", "norm2"},  {"intermediate.dense", "mlp.fc1"},
    {"output.dense", "mlp.fc2"},
};
constexpr NamePair kTransformers5InBlock[] = {
    {"layernorm_before", "norm1"}, {"attention.o_proj", "attn.proj"},
    {"layernorm_after", "norm2"},  {"mlp.fc1", "mlp.fc1"},
    {"mlp.fc2", "mlp.fc2"},
};

struct Layout {
  std::string_view encoder_prefix;  // decoder blocks are "decoder.decoder_layers." in both
  const NamePair* in_block;
  size_t in_block_count;
  std::array<std::string_view, 3> qkv;  // query, key, value module names
};

constexpr Layout kHub = {
    "vit.encoder.layer.",
    kHubInBlock,
    std::size(kHubInBlock),
    {"attention.attention.query", "attention.attention.key", "attention.attention.value"}};
constexpr Layout kTransformers5 = {"vit.layers.",
                                   kTransformers5InBlock,
                                   std::size(kTransformers5InBlock),
                                   {"attention.q_proj", "attention.k_proj", "attention.v_proj"}};
constexpr std::string_view kHfDecoderPrefix = "decoder.decoder_layers.";
// transformers 5.x save_pretrained writes the decoder blocks under this name (its reverse of
// the "encoder.layer." -> "layers." renaming also hits "decoder_layers."); import only.
constexpr std::string_view kHfSavedDecoderPrefix = "decoder.decoder_encoder.layer.";
constexpr std::array<std::string_view, 3> kPartNames = {"query", "key", "value"};

// "<prefix><index>.<rest>" split at the block index, when `name` has that form.
std::optional<std::pair<std::string, std::string>> SplitBlock(std::string_view name,
                                                              std::string_view prefix) {
  if (!name.starts_with(prefix)) return std::nullopt;
  std::string_view tail = name.substr(prefix.size());
  size_t dot = tail.find('.');
  if (dot == 0 || dot == std::string_view::npos) return std::nullopt;
  std::string_view index = tail.substr(0, dot);
  if (index.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  return std::make_pair(std::string(index), std::string(tail.substr(dot + 1)));
}

// Splits "module.weight" / "module.bias" into module and kind.
std::optional<std::pair<std::string_view, std::string_view>> SplitKind(std::string_view rest) {
  for (std::string_view kind : {".weight", ".bias"}) {
    if (rest.size() > kind.size() && rest.ends_with(kind)) {
      return std::make_pair(rest.substr(0, rest.size() - kind.size()), kind.substr(1));
    }
  }
  return std::nullopt;
}

Status Unknown(std::string_view name, std::string_view direction) {
  return InvalidArgumentError("cannot " + std::string(direction) + " tensor '" + std::string(name) +
                              "': not a ViTMAE parameter name");
}

Status Insert(TensorMap& out, const std::string& name, Tensor tensor) {
  if (!out.emplace(name, std::move(tensor)).second) {
    return InvalidArgumentError("two source tensors map to '" + name + "'");
  }
  return OkStatus();
}

// q/k/v parts gathered per fused official name: [query, key, value], nullptr until seen.
using QkvParts = std::map<std::string, std::array<const Tensor*, 3>>;

// Maps one block-internal name of `layout`; returns false when it is not one.
bool ImportInBlock(const Layout& layout, const std::string& official_prefix, std::string_view rest,
                   const Tensor& tensor, TensorMap& out, QkvParts& qkv, Status& status) {
  auto split = SplitKind(rest);
  if (!split) return false;
  auto [module, kind] = *split;
  for (size_t i = 0; i < layout.in_block_count; ++i) {
    if (module == layout.in_block[i].hf) {
      status = Insert(
          out, official_prefix + std::string(layout.in_block[i].official) + "." + std::string(kind),
          tensor);
      return true;
    }
  }
  for (size_t part = 0; part < 3; ++part) {
    if (module == layout.qkv[part]) {
      // operator[] value-initializes the array to nullptrs.
      qkv[official_prefix + std::string(kOfficialQkvPrefix) + std::string(kind)][part] = &tensor;
      return true;
    }
  }
  return false;
}

Result<Tensor> Fuse(const std::string& fused_name, const std::array<const Tensor*, 3>& parts) {
  for (size_t part = 0; part < 3; ++part) {
    if (parts[part] == nullptr) {
      return InvalidArgumentError("'" + fused_name + "' lacks its " +
                                  std::string(kPartNames[part]) + " part");
    }
  }
  const Tensor& q = *parts[0];
  for (size_t part = 1; part < 3; ++part) {
    if (parts[part]->dtype != q.dtype || parts[part]->shape != q.shape) {
      return InvalidArgumentError("'" + fused_name +
                                  "': query, key and value differ in dtype or shape");
    }
  }
  if (q.shape.empty()) return InvalidArgumentError("'" + fused_name + "': scalar q/k/v");
  Tensor fused;
  fused.dtype = q.dtype;
  fused.shape = q.shape;
  fused.shape[0] *= 3;
  fused.bytes = q.bytes + parts[1]->bytes + parts[2]->bytes;
  return fused;
}

}  // namespace

Result<TensorMap> ImportHfVitMae(const TensorMap& hf_tensors) {
  TensorMap out;
  QkvParts qkv;
  for (const auto& [raw_name, tensor] : hf_tensors) {
    // ViTMAEModel checkpoints carry no "vit." prefix on the encoder side.
    std::string name = raw_name;
    if (!name.starts_with("vit.") && !name.starts_with("decoder.")) name = "vit." + name;
    bool matched = false;
    for (const auto& pair : kTopLevel) {
      if (name == pair.hf) {
        MAESTRO_RETURN_IF_ERROR(Insert(out, std::string(pair.official), tensor));
        matched = true;
      }
    }
    for (const Layout* layout : {&kHub, &kTransformers5}) {
      for (auto [hf_prefix, official_prefix] :
           {std::pair{layout->encoder_prefix, kOfficialEncoderPrefix},
            std::pair{kHfDecoderPrefix, kOfficialDecoderPrefix},
            std::pair{kHfSavedDecoderPrefix, kOfficialDecoderPrefix}}) {
        if (matched) break;
        auto block = SplitBlock(name, hf_prefix);
        if (!block) continue;
        Status status;
        matched = ImportInBlock(*layout, std::string(official_prefix) + block->first + ".",
                                block->second, tensor, out, qkv, status);
        MAESTRO_RETURN_IF_ERROR(status);
      }
    }
    if (!matched) return Unknown(raw_name, "import");
  }
  for (const auto& [fused_name, parts] : qkv) {
    MAESTRO_ASSIGN_OR_RETURN(Tensor fused, Fuse(fused_name, parts));
    MAESTRO_RETURN_IF_ERROR(Insert(out, fused_name, std::move(fused)));
  }
  return out;
}

Result<TensorMap> ExportHfVitMae(const TensorMap& official_tensors, HfLayout layout_choice) {
  const Layout& layout = layout_choice == HfLayout::kHub ? kHub : kTransformers5;
  TensorMap out;
  for (const auto& [name, tensor] : official_tensors) {
    bool matched = false;
    for (const auto& pair : kTopLevel) {
      if (name == pair.official) {
        MAESTRO_RETURN_IF_ERROR(Insert(out, std::string(pair.hf), tensor));
        matched = true;
      }
    }
    for (auto [official_prefix, hf_prefix] :
         {std::pair{kOfficialEncoderPrefix, layout.encoder_prefix},
          std::pair{kOfficialDecoderPrefix, kHfDecoderPrefix}}) {
      if (matched) break;
      auto block = SplitBlock(name, official_prefix);
      if (!block) continue;
      auto split = SplitKind(block->second);
      if (!split) break;
      auto [module, kind] = *split;
      const std::string hf_block = std::string(hf_prefix) + block->first + ".";
      for (size_t i = 0; i < layout.in_block_count && !matched; ++i) {
        if (module == layout.in_block[i].official) {
          MAESTRO_RETURN_IF_ERROR(
              Insert(out, hf_block + std::string(layout.in_block[i].hf) + "." + std::string(kind),
                     tensor));
          matched = true;
        }
      }
      if (matched || std::string(module) + "." != kOfficialQkvPrefix) break;
      if (tensor.shape.empty() || tensor.shape[0] % 3 != 0) {
        return InvalidArgumentError("'" + name + "': first dim is not a multiple of 3");
      }
      const size_t part_bytes = tensor.bytes.size() / 3;
      for (size_t part = 0; part < 3; ++part) {
        Tensor piece;
        piece.dtype = tensor.dtype;
        piece.shape = tensor.shape;
        piece.shape[0] /= 3;
        piece.bytes = tensor.bytes.substr(part * part_bytes, part_bytes);
        MAESTRO_RETURN_IF_ERROR(
            Insert(out, hf_block + std::string(layout.qkv[part]) + "." + std::string(kind),
                   std::move(piece)));
      }
      matched = true;
    }
    if (!matched) return Unknown(name, "export");
  }
  return out;
}

}  // namespace maestro::checkpoint
