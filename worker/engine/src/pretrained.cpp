#include "maestro/engine/pretrained.h"

#include "maestro/checkpoint/checkpoint_dir.h"
#include "maestro/checkpoint/hf_vit_mae.h"
#include "maestro/checkpoint/torch_bridge.h"
#include "maestro/shared/file_util.h"

namespace maestro::engine {
namespace {

Result<PretrainedMae> LoadMaestro(const std::string& path, double mask_ratio) {
  auto manifest = checkpoint::VerifyCheckpoint(path);
  if (!manifest.ok()) return manifest.status().WithContext(path);
  MAESTRO_ASSIGN_OR_RETURN(std::string state_text, ReadFile(path + "/trainer_state.json"));
  MAESTRO_ASSIGN_OR_RETURN(Json state, Json::Parse(state_text));
  const Json* config_json = state.Find("config");
  if (config_json == nullptr) return DataLossError(path + "/trainer_state.json has no config");
  MAESTRO_ASSIGN_OR_RETURN(TrainConfig config, ParseTrainConfig(*config_json));
  if (mask_ratio > 0) config.model.mask_ratio = mask_ratio;
  PretrainedMae out;
  out.model = model::MaskedAutoencoderViT(config.model);
  MAESTRO_ASSIGN_OR_RETURN(auto weights, checkpoint::ReadSafetensors(path + "/model.safetensors"));
  MAESTRO_RETURN_IF_ERROR(checkpoint::LoadStateDict(*out.model, weights.tensors));
  out.step = manifest->step;
  out.source = "maestro checkpoint " + checkpoint::CheckpointName(manifest->step);
  out.mean = config.data.mean;
  out.std = config.data.std;
  out.data = config.data;
  return out;
}

Result<PretrainedMae> LoadHuggingFace(const std::string& path, double mask_ratio) {
  MAESTRO_ASSIGN_OR_RETURN(std::string text, ReadFile(path + "/config.json"));
  MAESTRO_ASSIGN_OR_RETURN(Json hf, Json::Parse(text));
  auto get = [&hf](const char* key, double fallback) {
    const Json* v = hf.Find(key);
    return v != nullptr && v->is_number() ? v->as_double() : fallback;
  };
  model::MaeOptions o;
  o.img_size = static_cast<int64_t>(get("image_size", 224));
  o.patch_size = static_cast<int64_t>(get("patch_size", 16));
  o.in_chans = static_cast<int64_t>(get("num_channels", 3));
  o.embed_dim = static_cast<int64_t>(get("hidden_size", 768));
  o.depth = static_cast<int64_t>(get("num_hidden_layers", 12));
  o.num_heads = static_cast<int64_t>(get("num_attention_heads", 12));
  o.decoder_embed_dim = static_cast<int64_t>(get("decoder_hidden_size", 512));
  o.decoder_depth = static_cast<int64_t>(get("decoder_num_hidden_layers", 8));
  o.decoder_num_heads = static_cast<int64_t>(get("decoder_num_attention_heads", 16));
  o.mlp_ratio = get("intermediate_size", 3072) / static_cast<double>(o.embed_dim);
  if (get("decoder_intermediate_size", 2048) !=
      o.mlp_ratio * static_cast<double>(o.decoder_embed_dim)) {
    return InvalidArgumentError(path + "/config.json: encoder and decoder MLP ratios differ");
  }
  o.layer_norm_eps = get("layer_norm_eps", 1e-12);
  o.mask_ratio = mask_ratio > 0 ? mask_ratio : get("mask_ratio", 0.75);
  const Json* norm_pix = hf.Find("norm_pix_loss");
  o.norm_pix_loss = norm_pix != nullptr && norm_pix->is_bool() && norm_pix->as_bool();
  MAESTRO_RETURN_IF_ERROR(o.Validate());
  PretrainedMae out;
  out.model = model::MaskedAutoencoderViT(o);
  MAESTRO_ASSIGN_OR_RETURN(auto weights, checkpoint::ReadSafetensors(path + "/model.safetensors"));
  MAESTRO_ASSIGN_OR_RETURN(auto imported, checkpoint::ImportHfVitMae(weights.tensors));
  MAESTRO_RETURN_IF_ERROR(checkpoint::LoadStateDict(*out.model, imported));
  out.source = "Hugging Face ViTMAE";
  if (o.in_chans == 3) {
    out.mean = {0.485, 0.456, 0.406};  // the image processor's ImageNet statistics
    out.std = {0.229, 0.224, 0.225};
  } else {
    out.mean.assign(static_cast<size_t>(o.in_chans), 0.5);
    out.std.assign(static_cast<size_t>(o.in_chans), 0.5);
  }
  return out;
}

}  // namespace

Result<PretrainedMae> LoadPretrainedMae(const std::string& path, double mask_ratio) {
  if (!IsDirectory(path)) return NotFoundError("checkpoint folder " + path + " does not exist");
  Result<PretrainedMae> loaded =
      InvalidArgumentError(path +
                           " is neither a maestro checkpoint (manifest.json) nor a Hugging Face "
                           "model folder (config.json)");
  if (PathExists(path + "/" + checkpoint::kManifestFile)) {
    loaded = LoadMaestro(path, mask_ratio);
  } else if (PathExists(path + "/config.json")) {
    loaded = LoadHuggingFace(path, mask_ratio);
  }
  if (loaded.ok()) loaded->model->eval();
  return loaded;
}

Status LoadMaeEncoderIntoVit(model::VisionTransformer& vit,
                             const checkpoint::TensorMap& mae_state) {
  const bool global_pool = vit->options().global_pool;
  MAESTRO_ASSIGN_OR_RETURN(checkpoint::TensorMap own, checkpoint::StateDict(*vit));
  checkpoint::TensorMap wanted;
  for (const auto& [name, tensor] : mae_state) {
    if (name.starts_with("decoder") || name == "mask_token" || name == "encoder_mask_token")
      continue;
    if (global_pool && name.starts_with("norm.")) continue;
    if (name == "pos_embed" && own.count(name) && tensor.shape != own.at(name).shape &&
        tensor.shape.size() == 3 && own.at(name).shape.size() == 3 &&
        tensor.shape[2] == own.at(name).shape[2]) {
      auto resized =
          model::InterpolatePosEmbed(checkpoint::ToTorch(tensor), vit->options().grid_size());
      MAESTRO_ASSIGN_OR_RETURN(wanted[name], checkpoint::FromTorch(resized));
      continue;
    }
    wanted[name] = tensor;
  }
  for (const auto& [name, tensor] : own) {
    if (name.starts_with("head.") || name.starts_with("head_bn.") || name.starts_with("fc_norm."))
      wanted[name] = tensor;
  }
  return checkpoint::LoadStateDict(*vit, wanted);
}

}  // namespace maestro::engine
