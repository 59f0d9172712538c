#include "maestro/engine/config.h"

#include "maestro/shared/config_tree.h"
#include "maestro/shared/sha256.h"

namespace maestro::engine {
namespace {

Json Doubles(const std::vector<double>& values) {
  Json::Array array;
  for (double v : values) array.emplace_back(v);
  return Json(std::move(array));
}

// The model fields a config may set, listed once: reading, printing and the result hash all
// walk these tables, so a field cannot be read without being hashed.
template <typename T>
struct ModelField {
  const char* key;
  T model::MaeOptions::*member;
};
constexpr ModelField<int64_t> kModelInts[] = {
    {"img_size", &model::MaeOptions::img_size},
    {"patch_size", &model::MaeOptions::patch_size},
    {"in_chans", &model::MaeOptions::in_chans},
    {"embed_dim", &model::MaeOptions::embed_dim},
    {"depth", &model::MaeOptions::depth},
    {"num_heads", &model::MaeOptions::num_heads},
    {"decoder_embed_dim", &model::MaeOptions::decoder_embed_dim},
    {"decoder_depth", &model::MaeOptions::decoder_depth},
    {"decoder_num_heads", &model::MaeOptions::decoder_num_heads},
};
constexpr ModelField<double> kModelDoubles[] = {
    {"mlp_ratio", &model::MaeOptions::mlp_ratio},
    {"mask_ratio", &model::MaeOptions::mask_ratio},
};
constexpr ModelField<bool> kModelBools[] = {
    {"norm_pix_loss", &model::MaeOptions::norm_pix_loss},
    {"encoder_mask_token", &model::MaeOptions::encoder_mask_token},
};

Json ModelJson(const std::string& preset, const model::MaeOptions& m) {
  Json::Object out{{"preset", preset}, {"mask_sampling", model::MaskSamplingName(m.mask_sampling)}};
  for (const auto& f : kModelInts) out.emplace(f.key, Json(m.*f.member));
  for (const auto& f : kModelDoubles) out.emplace(f.key, Json(m.*f.member));
  for (const auto& f : kModelBools) out.emplace(f.key, Json(m.*f.member));
  return Json(std::move(out));
}

Json AugmentJson(const DataConfig& d) {
  return Json(Json::Object{{"source", d.source},
                           {"split", d.split},
                           {"crop_scale_min", d.crop_scale_min},
                           {"crop_scale_max", d.crop_scale_max},
                           {"hflip", d.hflip},
                           {"mean", Doubles(d.mean)},
                           {"std", Doubles(d.std)}});
}

Json OptimJson(const OptimConfig& o) {
  return Json(Json::Object{{"batch_size", o.batch_size},
                           {"accum_iter", o.accum_iter},
                           {"epochs", o.epochs},
                           {"warmup_epochs", o.warmup_epochs},
                           {"blr", o.blr},
                           {"lr", o.lr},
                           {"min_lr", o.min_lr},
                           {"weight_decay", o.weight_decay},
                           {"betas", Doubles({o.beta1, o.beta2})},
                           {"clip_grad", o.clip_grad},
                           {"max_steps", o.max_steps}});
}

}  // namespace

Json TrainConfig::ToJson() const {
  Json data_json = AugmentJson(data);
  data_json.as_object()["path"] = Json(data.path);
  data_json.as_object()["num_workers"] = Json(data.num_workers);
  return Json(Json::Object{
      {"model", ModelJson(model_preset, model)},
      {"data", data_json},
      {"optim", OptimJson(optim)},
      {"run", Json(Json::Object{{"seed", static_cast<int64_t>(run.seed)},
                                {"threads", run.threads},
                                {"device", run.device},
                                {"precision", run.precision},
                                {"output_dir", run.output_dir}})},
      {"checkpoint", Json(Json::Object{{"dir", checkpoint.dir},
                                       {"interval_steps", checkpoint.interval_steps},
                                       {"interval_seconds", checkpoint.interval_seconds},
                                       {"keep_last", checkpoint.keep_last}})},
      {"log", Json(Json::Object{{"interval_steps", log.interval_steps}})},
  });
}

std::string TrainConfig::ResultHash() const {
  // max_steps only stops a run early; the steps it runs do not depend on it.
  Json optim_json = OptimJson(optim);
  optim_json.as_object().erase("max_steps");
  Json relevant(Json::Object{{"model", ModelJson(model_preset, model)},
                             {"data", AugmentJson(data)},
                             {"optim", std::move(optim_json)},
                             {"seed", static_cast<int64_t>(run.seed)},
                             {"precision", run.precision}});
  return Sha256Hex(relevant.Dump());
}

Result<TrainConfig> ParseTrainConfig(const Json& tree) {
  TrainConfig c;
  ConfigReader root(&tree, "");

  ConfigReader& m = root.Section("model");
  m.Read("preset", &c.model_preset);
  auto preset = model::MaePreset(c.model_preset);
  if (!preset.ok()) {
    m.Fail("preset", preset.status().message());
  } else {
    c.model = *preset;
  }
  for (const auto& f : kModelInts) m.Read(f.key, &(c.model.*f.member));
  for (const auto& f : kModelDoubles) m.Read(f.key, &(c.model.*f.member));
  for (const auto& f : kModelBools) m.Read(f.key, &(c.model.*f.member));
  std::string sampling = model::MaskSamplingName(c.model.mask_sampling);
  m.Read("mask_sampling", &sampling);
  if (auto parsed = model::ParseMaskSampling(sampling); parsed.ok()) {
    c.model.mask_sampling = *parsed;
  } else {
    m.Fail("mask_sampling", parsed.status().message());
  }

  ConfigReader& d = root.Section("data");
  d.Read("source", &c.data.source);
  d.Read("path", &c.data.path);
  d.Read("split", &c.data.split);
  d.Read("crop_scale_min", &c.data.crop_scale_min);
  d.Read("crop_scale_max", &c.data.crop_scale_max);
  d.Read("hflip", &c.data.hflip);
  d.Read("mean", &c.data.mean);
  d.Read("std", &c.data.std);
  d.Read("num_workers", &c.data.num_workers);

  ConfigReader& o = root.Section("optim");
  o.Read("batch_size", &c.optim.batch_size);
  o.Read("accum_iter", &c.optim.accum_iter);
  o.Read("epochs", &c.optim.epochs);
  o.Read("warmup_epochs", &c.optim.warmup_epochs);
  o.Read("blr", &c.optim.blr);
  o.Read("lr", &c.optim.lr);
  o.Read("min_lr", &c.optim.min_lr);
  o.Read("weight_decay", &c.optim.weight_decay);
  std::vector<double> betas = {c.optim.beta1, c.optim.beta2};
  o.Read("betas", &betas);
  if (betas.size() != 2) {
    o.Fail("betas", "expected two numbers [beta1, beta2]");
  } else {
    c.optim.beta1 = betas[0];
    c.optim.beta2 = betas[1];
  }
  o.Read("clip_grad", &c.optim.clip_grad);
  o.Read("max_steps", &c.optim.max_steps);

  ConfigReader& r = root.Section("run");
  int64_t seed = 0;
  r.Read("seed", &seed);
  c.run.seed = static_cast<uint64_t>(seed);
  r.Read("threads", &c.run.threads);
  r.Read("device", &c.run.device);
  r.Read("precision", &c.run.precision);
  r.Read("output_dir", &c.run.output_dir);

  ConfigReader& k = root.Section("checkpoint");
  k.Read("dir", &c.checkpoint.dir);
  k.Read("interval_steps", &c.checkpoint.interval_steps);
  k.Read("interval_seconds", &c.checkpoint.interval_seconds);
  k.Read("keep_last", &c.checkpoint.keep_last);

  ConfigReader& l = root.Section("log");
  l.Read("interval_steps", &c.log.interval_steps);

  // Values, once types are right.
  if (c.optim.batch_size <= 0) o.Fail("batch_size", "must be positive");
  if (c.optim.accum_iter <= 0) o.Fail("accum_iter", "must be positive");
  if (!(c.optim.epochs > 0)) o.Fail("epochs", "must be positive");
  if (!(c.optim.warmup_epochs >= 0 && c.optim.warmup_epochs < c.optim.epochs)) {
    o.Fail("warmup_epochs", "must be in [0, epochs)");
  }
  if (c.optim.max_steps < 0) o.Fail("max_steps", "must be non-negative");
  if (c.data.mean.size() != static_cast<size_t>(c.model.in_chans) ||
      c.data.std.size() != static_cast<size_t>(c.model.in_chans)) {
    d.Fail("mean", "mean and std need one value per input channel (" +
                       std::to_string(c.model.in_chans) + ")");
  }
  if (!(c.data.crop_scale_min > 0 && c.data.crop_scale_min <= c.data.crop_scale_max &&
        c.data.crop_scale_max <= 1)) {
    d.Fail("crop_scale_min", "need 0 < crop_scale_min <= crop_scale_max <= 1");
  }
  if (c.data.num_workers <= 0) d.Fail("num_workers", "must be positive");
  if (c.run.precision != "fp32" && c.run.precision != "bf16")
    r.Fail("precision", "must be fp32 or bf16");
  if (c.run.device != "cpu" && c.run.device.rfind("cuda", 0) != 0)
    r.Fail("device", "must be cpu or cuda:N");
  if (c.run.precision == "bf16" && c.run.device == "cpu") {
    r.Fail("precision", "bf16 autocast is for CUDA devices; use fp32 on the CPU");
  }
  if (c.checkpoint.interval_steps < 0 || c.checkpoint.interval_seconds < 0) {
    k.Fail("interval_steps", "intervals must be non-negative");
  }
  if (c.log.interval_steps <= 0) l.Fail("interval_steps", "must be positive");
  MAESTRO_RETURN_IF_ERROR(root.Finish());
  MAESTRO_RETURN_IF_ERROR(c.model.Validate());
  return c;
}

Result<TrainConfig> LoadTrainConfig(const std::string& path,
                                    const std::vector<std::string>& overrides) {
  Json tree = Json(Json::Object{});
  if (!path.empty()) {
    MAESTRO_ASSIGN_OR_RETURN(tree, LoadConfigFile(path));
  }
  for (const auto& assignment : overrides)
    MAESTRO_RETURN_IF_ERROR(ApplyConfigOverride(tree, assignment));
  return ParseTrainConfig(tree);
}

}  // namespace maestro::engine
