#include "maestro/shared/train_config.h"

#include "maestro/shared/config_tree.h"
#include "maestro/shared/sha256.h"

namespace maestro::engine {
namespace {

Json Doubles(const std::vector<double>& values) {
  Json::Array array;
  for (double v : values) array.emplace_back(v);
  return Json(std::move(array));
}

// The model and classify fields a config may set, listed once: reading, printing and the result
// hash all walk these tables, so a field cannot be read without being hashed.
template <typename S, typename T>
struct Field {
  const char* key;
  T S::*member;
};
template <typename T>
using ModelField = Field<model::MaeOptions, T>;
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
  return Json(Json::Object{{"optimizer", o.optimizer},
                           {"batch_size", o.batch_size},
                           {"accum_iter", o.accum_iter},
                           {"epochs", o.epochs},
                           {"warmup_epochs", o.warmup_epochs},
                           {"blr", o.blr},
                           {"lr", o.lr},
                           {"min_lr", o.min_lr},
                           {"weight_decay", o.weight_decay},
                           {"betas", Doubles({o.beta1, o.beta2})},
                           {"clip_grad", o.clip_grad},
                           {"max_steps", o.max_steps},
                           {"max_epochs", o.max_epochs},
                           {"steps", o.steps}});
}

template <typename T>
using ClassifyField = Field<ClassifyConfig, T>;
constexpr ClassifyField<int64_t> kClassifyInts[] = {
    {"num_classes", &ClassifyConfig::num_classes},
    {"tune_blocks", &ClassifyConfig::tune_blocks},
    {"randaug_ops", &ClassifyConfig::randaug_ops},
};
constexpr ClassifyField<double> kClassifyDoubles[] = {
    {"layer_decay", &ClassifyConfig::layer_decay},
    {"drop_path", &ClassifyConfig::drop_path},
    {"mixup", &ClassifyConfig::mixup},
    {"cutmix", &ClassifyConfig::cutmix},
    {"mixup_prob", &ClassifyConfig::mixup_prob},
    {"mixup_switch_prob", &ClassifyConfig::mixup_switch_prob},
    {"label_smoothing", &ClassifyConfig::label_smoothing},
    {"randaug_magnitude", &ClassifyConfig::randaug_magnitude},
    {"randaug_magnitude_std", &ClassifyConfig::randaug_magnitude_std},
    {"reprob", &ClassifyConfig::reprob},
    {"eval_crop_pct", &ClassifyConfig::eval_crop_pct},
};
constexpr ClassifyField<bool> kClassifyBools[] = {
    {"global_pool", &ClassifyConfig::global_pool},
};
constexpr ClassifyField<std::string> kClassifyStrings[] = {
    {"eval_split", &ClassifyConfig::eval_split},
};
// Read and printed, but left out of the result hash: they change how the run is evaluated or
// where its weights come from (recorded with their sha256), not what it trains.
constexpr ClassifyField<int64_t> kClassifyUnhashedInts[] = {
    {"eval_batch_size", &ClassifyConfig::eval_batch_size},
    {"eval_max_samples", &ClassifyConfig::eval_max_samples},
};

// The classify fields that change the result (the pretrained weights enter as "none" or
// "checkpoint": their content hash is recorded separately).
Json ClassifyJson(const ClassifyConfig& c) {
  Json::Object out{{"pretrained", c.pretrained == "none" ? "none" : "checkpoint"}};
  for (const auto& f : kClassifyInts) out.emplace(f.key, Json(c.*f.member));
  for (const auto& f : kClassifyDoubles) out.emplace(f.key, Json(c.*f.member));
  for (const auto& f : kClassifyBools) out.emplace(f.key, Json(c.*f.member));
  for (const auto& f : kClassifyStrings) out.emplace(f.key, Json(c.*f.member));
  return Json(std::move(out));
}

void ReadClassify(ConfigReader& k, TrainConfig& c) {
  ClassifyConfig& x = c.classify;
  k.Read("pretrained", &x.pretrained);
  for (const auto& f : kClassifyInts) k.Read(f.key, &(x.*f.member));
  for (const auto& f : kClassifyDoubles) k.Read(f.key, &(x.*f.member));
  for (const auto& f : kClassifyBools) k.Read(f.key, &(x.*f.member));
  for (const auto& f : kClassifyStrings) k.Read(f.key, &(x.*f.member));
  for (const auto& f : kClassifyUnhashedInts) k.Read(f.key, &(x.*f.member));
  if (x.pretrained.empty()) {
    k.Fail("pretrained",
           "is required: a pretraining checkpoint, a Hugging Face ViTMAE folder, a .safetensors "
           "file, or none (a randomly initialized encoder)");
  }
  if (x.num_classes <= 0) k.Fail("num_classes", "is required (the head size), a positive number");
  if (x.tune_blocks < -1 || x.tune_blocks > c.model.depth) {
    k.Fail("tune_blocks", "must be -1 (everything) or 0.." + std::to_string(c.model.depth));
  }
  if (c.job == kJobLinprobe && x.tune_blocks != 0) {
    k.Fail("tune_blocks",
           "a linprobe job trains the head only; partial fine-tuning is a finetune job with "
           "classify.tune_blocks");
  }
  if (!(x.layer_decay > 0 && x.layer_decay <= 1)) k.Fail("layer_decay", "must be in (0, 1]");
  if (!(x.drop_path >= 0 && x.drop_path < 1)) k.Fail("drop_path", "must be in [0, 1)");
  if (x.mixup < 0 || x.cutmix < 0) k.Fail("mixup", "mixup and cutmix alphas must be >= 0");
  if (!(x.label_smoothing >= 0 && x.label_smoothing < 1))
    k.Fail("label_smoothing", "must be in [0, 1)");
  if ((x.mixup > 0 || x.cutmix > 0) && x.mixup_prob > 0 && c.optim.batch_size % 2 != 0) {
    k.Fail("mixup", "mixup/cutmix pair each image with its mirror: optim.batch_size must be even");
  }
  if (x.randaug_ops < 0) k.Fail("randaug_ops", "must be >= 0");
  if (!(x.reprob >= 0 && x.reprob <= 1)) k.Fail("reprob", "must be in [0, 1]");
  if (!(x.eval_crop_pct > 0 && x.eval_crop_pct <= 1)) k.Fail("eval_crop_pct", "must be in (0, 1]");
  if (x.eval_batch_size <= 0) k.Fail("eval_batch_size", "must be positive");
  if (x.eval_max_samples < 0) k.Fail("eval_max_samples", "must be >= 0 (0 = all)");
}

}  // namespace

Result<TrainConfig> DefaultTrainConfig(const std::string& job) {
  TrainConfig c;
  c.job = job;
  if (job == kJobPretrain) return c;
  c.data.crop_scale_min = 0.08;
  if (job == kJobFinetune) {  // Table 9 and main_finetune.py
    c.optim.blr = 1e-3;
    c.optim.min_lr = 1e-6;
    c.optim.beta2 = 0.999;
    return c;
  }
  if (job == kJobLinprobe) {  // Table 10 and main_linprobe.py
    c.optim.optimizer = "lars";
    c.optim.blr = 0.1;
    c.optim.weight_decay = 0;
    ClassifyConfig& k = c.classify;
    k.global_pool = false;  // the cls token
    k.tune_blocks = 0;
    k.layer_decay = 1;
    k.drop_path = k.mixup = k.cutmix = k.label_smoothing = k.reprob = 0;
    k.randaug_ops = 0;
    return c;
  }
  return InvalidArgumentError("unknown job '" + job + "' (pretrain, finetune, linprobe)");
}

Json TrainConfig::ToJson() const {
  Json data_json = AugmentJson(data);
  data_json.as_object()["path"] = Json(data.path);
  data_json.as_object()["num_workers"] = Json(data.num_workers);
  if (!data.service.empty()) {
    data_json.as_object()["service"] = Json(data.service);
    data_json.as_object()["dataset"] = Json(data.dataset);
  }
  Json out(Json::Object{
      {"job", job},
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
      {"dist", Json(Json::Object{{"bucket_mb", dist.bucket_mb}, {"timeout_s", dist.timeout_s}})},
  });
  if (!is_classification()) {
    out.as_object()["eval"] = Json(Json::Object{
        {"images", eval.images}, {"split", eval.split}, {"mask_seed", eval.mask_seed}});
  }
  if (is_classification()) {
    Json classify_json = ClassifyJson(classify);
    classify_json.as_object()["pretrained"] = Json(classify.pretrained);
    for (const auto& f : kClassifyUnhashedInts)
      classify_json.as_object()[f.key] = Json(classify.*f.member);
    out.as_object()["classify"] = std::move(classify_json);
  }
  return out;
}

std::string TrainConfig::ResultHash() const {
  // max_steps and max_epochs only stop a run early; the steps it runs do not depend on them.
  Json optim_json = OptimJson(optim);
  optim_json.as_object().erase("max_steps");
  optim_json.as_object().erase("max_epochs");
  if (optim.steps == 0) optim_json.as_object().erase("steps");
  Json relevant(Json::Object{{"model", ModelJson(model_preset, model)},
                             {"data", AugmentJson(data)},
                             {"optim", std::move(optim_json)},
                             {"seed", static_cast<int64_t>(run.seed)},
                             {"precision", run.precision}});
  if (is_classification()) {
    relevant.as_object()["job"] = Json(job);
    relevant.as_object()["classify"] = ClassifyJson(classify);
  }
  return Sha256Hex(relevant.Dump());
}

Result<TrainConfig> ParseTrainConfig(const Json& tree, const std::string& job) {
  MAESTRO_ASSIGN_OR_RETURN(TrainConfig c, DefaultTrainConfig(job));
  ConfigReader root(&tree, "");
  std::string job_key = job;
  root.Read("job", &job_key);
  if (job_key != job) {
    root.Fail("job", "this config is for a " + job_key + " job, not " + job);
  }

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
  d.Read("service", &c.data.service);
  d.Read("dataset", &c.data.dataset);
  d.Read("crop_scale_min", &c.data.crop_scale_min);
  d.Read("crop_scale_max", &c.data.crop_scale_max);
  d.Read("hflip", &c.data.hflip);
  d.Read("mean", &c.data.mean);
  d.Read("std", &c.data.std);
  d.Read("num_workers", &c.data.num_workers);

  ConfigReader& o = root.Section("optim");
  o.Read("optimizer", &c.optim.optimizer);
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
  o.Read("max_epochs", &c.optim.max_epochs);
  o.Read("steps", &c.optim.steps);

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

  ConfigReader& ds = root.Section("dist");
  ds.Read("bucket_mb", &c.dist.bucket_mb);
  ds.Read("timeout_s", &c.dist.timeout_s);

  if (c.is_classification()) ReadClassify(root.Section("classify"), c);
  ConfigReader* ev = nullptr;
  if (!c.is_classification()) {
    ev = &root.Section("eval");
    ev->Read("images", &c.eval.images);
    ev->Read("split", &c.eval.split);
    ev->Read("mask_seed", &c.eval.mask_seed);
  }

  // Values, once types are right.
  if (c.optim.optimizer != "adamw" && c.optim.optimizer != "lars")
    o.Fail("optimizer", "must be adamw or lars");
  if (c.optim.batch_size <= 0) o.Fail("batch_size", "must be positive");
  if (c.optim.accum_iter <= 0) o.Fail("accum_iter", "must be positive");
  if (!(c.optim.epochs > 0)) o.Fail("epochs", "must be positive");
  if (!(c.optim.warmup_epochs >= 0 && c.optim.warmup_epochs < c.optim.epochs)) {
    o.Fail("warmup_epochs", "must be in [0, epochs)");
  }
  if (c.optim.max_steps < 0) o.Fail("max_steps", "must be non-negative");
  if (!(c.optim.max_epochs >= 0 && c.optim.max_epochs <= kMaxEpochs)) {
    o.Fail("max_epochs", "must be in [0, " + std::to_string(kMaxEpochs) + "]");
  }
  if (c.optim.steps < 0 || c.optim.steps > kMaxSteps) {
    o.Fail("steps", "must be in [0, " + std::to_string(kMaxSteps) + "] (0: epochs decide)");
  }
  if (ev != nullptr) {
    if (c.eval.images < 0 || c.eval.images > kMaxEvalImages) {
      ev->Fail("images", "must be in [0, " + std::to_string(kMaxEvalImages) + "] (0: off)");
    }
    if (c.eval.split.empty()) ev->Fail("split", "must name a split (test: held out)");
    if (c.eval.mask_seed < 0) ev->Fail("mask_seed", "must be non-negative");
  }
  if (c.data.mean.size() != static_cast<size_t>(c.model.in_chans) ||
      c.data.std.size() != static_cast<size_t>(c.model.in_chans)) {
    d.Fail("mean", "mean and std need one value per input channel (" +
                       std::to_string(c.model.in_chans) + ")");
  }
  if (!(c.data.crop_scale_min > 0 && c.data.crop_scale_min <= c.data.crop_scale_max &&
        c.data.crop_scale_max <= 1)) {
    d.Fail("crop_scale_min", "need 0 < crop_scale_min <= crop_scale_max <= 1");
  }
  if (c.data.num_workers <= 0 || c.data.num_workers > kMaxDataWorkers) {
    d.Fail("num_workers", std::to_string(c.data.num_workers) + " is outside [1, " +
                              std::to_string(kMaxDataWorkers) + "]");
  }
  if (c.run.threads < 0 || c.run.threads > kMaxThreads) {
    r.Fail("threads", std::to_string(c.run.threads) + " is outside [0, " +
                          std::to_string(kMaxThreads) + "] (0: LibTorch's default)");
  }
  if (c.optim.batch_size > kMaxBatchSize) {
    o.Fail("batch_size",
           std::to_string(c.optim.batch_size) + " is above " + std::to_string(kMaxBatchSize));
  }
  if (c.optim.accum_iter > kMaxAccumIter) {
    o.Fail("accum_iter",
           std::to_string(c.optim.accum_iter) + " is above " + std::to_string(kMaxAccumIter));
  }
  if (c.optim.epochs > kMaxEpochs) {
    o.Fail("epochs", std::to_string(c.optim.epochs) + " is above " + std::to_string(kMaxEpochs));
  }
  if (!c.data.service.empty() && c.data.source != "shards") {
    d.Fail("service", "streams shard datasets: set data.source: shards");
  }
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
  if (c.dist.bucket_mb <= 0) ds.Fail("bucket_mb", "must be positive");
  if (c.dist.timeout_s <= 0) ds.Fail("timeout_s", "must be positive");
  MAESTRO_RETURN_IF_ERROR(root.Finish());
  MAESTRO_RETURN_IF_ERROR(c.model.Validate());
  const double activations = ActivationBytesPerRank(c);
  if (activations > kMaxActivationBytes) {
    return InvalidArgumentError(
        "optim.batch_size: about " + std::to_string(static_cast<int64_t>(activations / (1 << 30))) +
        " GiB of activations per rank for batch_size " + std::to_string(c.optim.batch_size) +
        " at this model size, above the " +
        std::to_string(static_cast<int64_t>(kMaxActivationBytes / (1 << 30))) +
        " GiB any one GPU or machine here holds");
  }
  return c;
}

double ActivationBytesPerRank(const TrainConfig& c) {
  const auto& m = c.model;
  // Per layer and sample, a transformer block keeps about s*d*(34 + 5*a*s/d) bytes of 16-bit
  // activations (Korthikanti et al. 2022); fp32 doubles it.
  auto layer = [](double tokens, double width, double heads) {
    return tokens * width * (34.0 + 5.0 * heads * tokens / width) * 2.0;
  };
  const double patches = static_cast<double>(m.num_patches());
  const double visible = c.is_classification() ? patches + 1 : patches * (1 - m.mask_ratio) + 1;
  double per_sample =
      static_cast<double>(m.depth) *
      layer(visible, static_cast<double>(m.embed_dim), static_cast<double>(m.num_heads));
  if (!c.is_classification()) {
    per_sample += static_cast<double>(m.decoder_depth) *
                  layer(patches + 1, static_cast<double>(m.decoder_embed_dim),
                        static_cast<double>(m.decoder_num_heads));
  }
  return per_sample * static_cast<double>(c.optim.batch_size);
}

Result<TrainConfig> LoadTrainConfig(const std::string& path,
                                    const std::vector<std::string>& overrides,
                                    const std::string& job) {
  Json tree = Json(Json::Object{});
  if (!path.empty()) {
    MAESTRO_ASSIGN_OR_RETURN(tree, LoadConfigFile(path));
  }
  for (const auto& assignment : overrides)
    MAESTRO_RETURN_IF_ERROR(ApplyConfigOverride(tree, assignment));
  return ParseTrainConfig(tree, job);
}

}  // namespace maestro::engine
