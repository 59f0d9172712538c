#include "maestro/engine/trainer.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "job.h"
#include "maestro/checkpoint/checkpoint_dir.h"
#include "maestro/checkpoint/torch_bridge.h"
#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/loader.h"
#include "maestro/dataloader/records.h"
#ifdef MAESTRO_HAVE_SHARDS
#include "maestro/dataloader/shards.h"
#endif
#ifdef MAESTRO_HAVE_DATA_SERVICE
#include "maestro/dataloader/data_client.h"
#endif
#include "maestro/dist/communicator.h"
#include "maestro/engine/exit_status.h"
#include "maestro/engine/schedule.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/progress_record.h"
#include "maestro/shared/rng.h"
#include "maestro/shared/sha256.h"

namespace maestro::engine {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> g_stop_signal{0};

void OnStopSignal(int signo) { g_stop_signal.store(signo); }

// Where the run is: the next micro-step to take.
struct Position {
  int64_t epoch = 0;
  int64_t micro_step = 0;      // within the epoch
  int64_t optimizer_step = 0;  // optimizer steps taken since the run began
};

// A failure with its exit status.
struct Failure {
  int status;
  std::string message;
};

std::string FormatDuration(double seconds) {
  auto s = static_cast<int64_t>(seconds);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof(text), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  else
    std::snprintf(text, sizeof(text), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return text;
}

constexpr uint64_t kTorchSeedPurpose = 0x54524348ULL;  // "TRCH"
constexpr uint64_t kMixupPurpose = 0x4D495855ULL;      // "MIXU"

class Trainer {
 public:
  // `out` is rank 0's; the other ranks of a data-parallel run print only their errors (to
  // stderr, with their rank).
  Trainer(const TrainConfig& config, const TrainOptions& options, std::ostream& out,
          std::unique_ptr<dist::Communicator> communicator)
      : config_(config),
        options_(options),
        out_(communicator->rank() == 0 ? out : null_out_),
        device_(config.run.device),
        comm_(std::move(communicator)),
        rank_(comm_->rank()),
        world_size_(comm_->world_size()),
        distributed_(comm_->backend() != "single") {
    null_out_.setstate(std::ios::badbit);
    if (const char* progress = std::getenv(kProgressFileEnv)) progress_file_ = progress;
  }

  int Run() {
    try {
      if (auto failure = Setup()) return Fail(*failure);
      return Loop();
    } catch (const Error& e) {
      const bool permanent = e.status().code() == StatusCode::kInvalidArgument ||
                             e.status().code() == StatusCode::kFailedPrecondition ||
                             e.status().code() == StatusCode::kDataLoss;
      return Fail(
          {permanent ? kExitPermanentFailure : kExitRetryableFailure, e.status().ToString()});
    } catch (const std::exception& e) {
      return Fail({kExitRetryableFailure, e.what()});
    }
  }

 private:
  int Fail(const Failure& failure) {
    out_ << "error: " << failure.message << std::endl;
    if (rank_ != 0) std::cerr << "error: rank " << rank_ << ": " << failure.message << std::endl;
    return failure.status;
  }

  std::optional<Failure> Setup() {
    if (device_.is_cuda() && !torch::cuda::is_available()) {
      return Failure{kExitPermanentFailure,
                     "run.device is " + config_.run.device + " but CUDA is not available"};
    }
    if (device_.is_cuda() && config_.run.precision == "fp32") {
      // fp32 means fp32: no TF32 in cuBLAS or cuDNN (whose default allows it), so a CUDA run
      // matches the CPU's to rounding. bf16 autocast is the fast path.
      at::globalContext().setAllowTF32CuBLAS(false);
      at::globalContext().setAllowTF32CuDNN(false);
    }
    if (config_.run.threads > 0) torch::set_num_threads(static_cast<int>(config_.run.threads));
    out_ << "config " << config_.ToJson().Dump() << "\n";
    if (distributed_) {
      out_ << "data-parallel: " << world_size_ << (world_size_ == 1 ? " rank (" : " ranks (")
           << comm_->backend() << "), gradients all-reduced in buckets of "
           << config_.dist.bucket_mb << " MB\n";
    }
    out_ << "config hash " << config_.ResultHash() << std::endl;

    // Output folder and checkpoint location first: a bad path fails before any work.
    if (Status made = MakeDirectories(config_.run.output_dir); !made.ok()) {
      return Failure{kExitPermanentFailure, "run.output_dir: " + made.message()};
    }
    auto storage = checkpoint::OpenStorage(config_.checkpoint_location());
    if (!storage.ok()) return Failure{kExitPermanentFailure, storage.status().ToString()};
    storage_ = std::move(*storage);
    if (Status s = storage_->EnsureWritable(); !s.ok())
      return Failure{kExitPermanentFailure, s.ToString()};

    auto store = OpenRecordStore(config_.data);
    if (!store.ok()) return DataFailure(store.status());
    store_ = std::move(*store);
    if (store_) {
      dataset_ = dataloader::RecordDataset(store_);
    } else {
      auto dataset = OpenDataset(config_.data);
      if (!dataset.ok()) return DataFailure(dataset.status());
      dataset_ = std::move(*dataset);
    }
    micro_global_batch_ = config_.optim.batch_size * world_size_;
    if (micro_global_batch_ > dataset_->size()) {
      return Failure{kExitPermanentFailure,
                     "the global batch " + std::to_string(micro_global_batch_) +
                         " is larger than the dataset (" + std::to_string(dataset_->size()) + ")"};
    }
    steps_per_epoch_ = dataset_->size() / micro_global_batch_;
    optimizer_steps_per_epoch_ = steps_per_epoch_ / config_.optim.accum_iter;
    if (optimizer_steps_per_epoch_ == 0) {
      return Failure{kExitPermanentFailure, "optim.accum_iter exceeds the micro-steps of an epoch"};
    }
    // The schedule spans optim.steps when set, else optim.epochs; max_steps and max_epochs
    // stop the run earlier on the same schedule (a later run with a larger stop continues it).
    const double steps_per_epoch = static_cast<double>(optimizer_steps_per_epoch_);
    schedule_epochs_ = config_.optim.epochs;
    if (config_.optim.steps > 0) {
      schedule_epochs_ = static_cast<double>(config_.optim.steps) / steps_per_epoch;
      if (!(config_.optim.warmup_epochs < schedule_epochs_)) {
        return Failure{kExitPermanentFailure,
                       "optim.warmup_epochs " + std::to_string(config_.optim.warmup_epochs) +
                           " is not below the " + std::to_string(schedule_epochs_) +
                           " epochs of optim.steps " + std::to_string(config_.optim.steps)};
      }
    }
    total_steps_ = config_.optim.steps > 0
                       ? config_.optim.steps
                       : static_cast<int64_t>(std::ceil(config_.optim.epochs * steps_per_epoch));
    if (config_.optim.max_steps > 0) total_steps_ = std::min(total_steps_, config_.optim.max_steps);
    if (config_.optim.max_epochs > 0) {
      total_steps_ =
          std::min(total_steps_,
                   static_cast<int64_t>(std::ceil(config_.optim.max_epochs * steps_per_epoch)));
    }
    out_ << "data " << dataset_->identity().name << ": " << dataset_->size() << " samples, "
         << steps_per_epoch_ << " micro-steps of " << micro_global_batch_
         << " per epoch, accum_iter " << config_.optim.accum_iter << ", " << total_steps_
         << " optimizer steps in all\n";

    std::optional<checkpoint::FoundCheckpoint> found;
    if (auto failure = FindResumePoint(found)) return failure;
    torch::manual_seed(config_.run.seed);
    job_ = config_.is_classification() ? MakeClassifyJob(config_) : MakePretrainJob(config_);
    if (Status built = job_->Build(device_, world_size_, /*load_pretrained=*/!found, out_);
        !built.ok()) {
      return Failure{
          built.code() == StatusCode::kUnavailable ? kExitRetryableFailure : kExitPermanentFailure,
          built.ToString()};
    }
    peak_lr_ = config_.peak_lr(world_size_);
    if (auto failure = Restore(found)) return failure;
    if (distributed_) {
      // Every rank starts from rank 0's parameters; gradients are averaged in buckets.
      std::vector<torch::Tensor> params;
      for (auto& p : job_->module().parameters()) params.push_back(p.data());
      if (Status s = comm_->Broadcast(params, 0); !s.ok())
        return Failure{kExitRetryableFailure, "broadcasting the parameters: " + s.ToString()};
      grad_sync_ = std::make_unique<dist::GradientSynchronizer>(
          job_->module().parameters(), static_cast<int64_t>(config_.dist.bucket_mb * 1024 * 1024));
    }

    normalize_ = PixelNormalizer(config_.data, device_);

    dataloader::StreamOptions stream;
    stream.seed = config_.run.seed;
    stream.global_batch = micro_global_batch_;
    stream.rank = rank_;
    stream.world_size = world_size_;
    stream.augment.output_size = config_.model.img_size;
    stream.augment.scale_min = config_.data.crop_scale_min;
    stream.augment.scale_max = config_.data.crop_scale_max;
    stream.augment.horizontal_flip = config_.data.hflip;
    job_->ConfigureStream(stream);
    stream.num_workers = config_.data.num_workers;
    if (store_) {  // the rank's record stream, from the data service or the local shards
      dataloader::StreamSpec spec;
      spec.seed = stream.seed;
      spec.global_batch = stream.global_batch;
      spec.rank = stream.rank;
      spec.world_size = stream.world_size;
      spec.epoch = position_.epoch;
      spec.cursor = DataCursor();
      auto records = store_->OpenStream(spec);
      if (!records.ok()) return DataFailure(records.status());
      source_ = std::make_unique<dataloader::LocalBatchSource>(
          *dataset_, std::move(*records), stream, position_.epoch, position_.micro_step);
    } else {
      source_ = std::make_unique<dataloader::LocalBatchSource>(*dataset_, stream, position_.epoch,
                                                               position_.micro_step);
    }
    InstallStopSignalHandlers();
    return std::nullopt;
  }

  // A data source that cannot be opened: retryable when the service is unreachable.
  static Failure DataFailure(const Status& status) {
    return Failure{
        status.code() == StatusCode::kUnavailable ? kExitRetryableFailure : kExitPermanentFailure,
        "data: " + status.ToString()};
  }

  // This rank's position in its epoch sequence of records (records.h): where the stream
  // resumes.
  int64_t DataCursor() const { return position_.micro_step * (micro_global_batch_ / world_size_); }

  // The checkpoint to resume from, when asked and available.
  std::optional<Failure> FindResumePoint(std::optional<checkpoint::FoundCheckpoint>& found) {
    if (options_.resume == "auto") {
      std::vector<std::string> skipped;
      auto latest = checkpoint::FindLatestValid(*storage_, &skipped);
      if (!latest.ok()) return Failure{kExitRetryableFailure, latest.status().ToString()};
      for (const auto& line : skipped)
        out_ << "warning: skipping corrupt checkpoint " << line << "\n";
      found = *latest;
      if (!found && !skipped.empty()) {
        // Checkpoints were written and none is valid: starting fresh would silently throw the
        // run away (and a retry finds the same). The operator decides.
        std::string each;
        for (const auto& line : skipped) each += "\n  " + line;
        return Failure{kExitPermanentFailure,
                       "resume auto: " + std::to_string(skipped.size()) + " checkpoint(s) in " +
                           storage_->uri() + " and none is valid:" + each +
                           "\n(remove them to start fresh, or --resume a copy you trust)"};
      }
      if (!found)
        out_ << "resume auto: no checkpoint in " << storage_->uri() << ", starting fresh\n";
    } else if (!options_.resume.empty()) {
      auto manifest = checkpoint::VerifyCheckpoint(options_.resume);
      if (!manifest.ok()) {
        return Failure{kExitPermanentFailure,
                       "--resume " + options_.resume + ": " + manifest.status().ToString()};
      }
      found = checkpoint::FoundCheckpoint{options_.resume, options_.resume, *manifest};
    } else {
      auto existing = storage_->List();
      if (existing.ok() && !existing->empty()) {
        return Failure{kExitPermanentFailure,
                       "checkpoint location " + storage_->uri() +
                           " already holds checkpoints: pass --resume auto to continue, "
                           "or choose another run.output_dir / checkpoint.dir"};
      }
    }
    return std::nullopt;
  }

  // Restores the position, model and optimizer from `found` (fresh start when empty).
  std::optional<Failure> Restore(const std::optional<checkpoint::FoundCheckpoint>& found) {
    const std::string metrics_path = config_.run.output_dir + "/metrics.jsonl";
    if (!found) {
      if (rank_ == 0) std::ofstream truncate(metrics_path, std::ios::trunc);
      return std::nullopt;
    }
    auto state_text = ReadFile(found->path + "/trainer_state.json");
    if (!state_text.ok()) return Failure{kExitRetryableFailure, state_text.status().ToString()};
    auto state = Json::Parse(*state_text);
    if (!state.ok())
      return Failure{kExitPermanentFailure, "trainer_state.json: " + state.status().message()};
    try {
      if (state->Find("format_version")->as_int() != kTrainerStateVersion ||
          state->Find("sampler_version")->as_int() != kSamplerVersion ||
          state->Find("augment_version")->as_int() != kAugmentVersion ||
          (state->Find("decoder_version") != nullptr &&
           state->Find("decoder_version")->as_int() != kDecoderVersion)) {
        return Failure{kExitPermanentFailure,
                       found->name + " was written by another trainer/sampler version"};
      }
      const Json& dataset = *state->Find("dataset");
      if (dataset.Find("content_hash")->as_string() != dataset_->identity().content_hash) {
        return Failure{kExitPermanentFailure,
                       found->name + " was trained on other data (" +
                           dataset.Find("name")->as_string() + ", hash " +
                           dataset.Find("content_hash")->as_string().substr(0, 12) + ")"};
      }
      if (state->Find("config_hash")->as_string() != config_.ResultHash()) {
        return Failure{kExitPermanentFailure,
                       found->name + " was written with another config (result hash " +
                           state->Find("config_hash")->as_string().substr(0, 12) + " vs " +
                           config_.ResultHash().substr(0, 12) +
                           "); resume needs the same model, data and optim settings"};
      }
      if (const Json* batch = state->Find("global_batch");
          batch != nullptr && batch->as_int() != config_.global_batch(world_size_)) {
        return Failure{kExitPermanentFailure,
                       found->name + " was trained with a global batch of " + batch->Dump() +
                           " (world size " + state->Find("world_size")->Dump() +
                           "); this run's is " + std::to_string(config_.global_batch(world_size_)) +
                           " (world size " + std::to_string(world_size_) + ")"};
      }
      if (const Json* pretrained = state->Find("pretrained")) job_->RestoreProvenance(*pretrained);
      position_.epoch = state->Find("epoch")->as_int();
      position_.micro_step = state->Find("micro_step")->as_int();
      position_.optimizer_step = state->Find("optimizer_step")->as_int();
    } catch (const std::exception& e) {
      return Failure{kExitPermanentFailure,
                     "trainer_state.json of " + found->name + " is malformed: " + e.what()};
    }
    auto weights = checkpoint::ReadSafetensors(found->path + "/model.safetensors");
    if (!weights.ok()) return Failure{kExitRetryableFailure, weights.status().ToString()};
    if (Status s = checkpoint::LoadStateDict(job_->module(), weights->tensors); !s.ok()) {
      return Failure{kExitPermanentFailure, s.ToString()};
    }
    auto optim = checkpoint::ReadSafetensors(found->path + "/optimizer.safetensors");
    if (!optim.ok()) return Failure{kExitRetryableFailure, optim.status().ToString()};
    std::map<std::string, torch::Tensor> optim_state;
    for (const auto& [name, tensor] : optim->tensors)
      optim_state[name] = checkpoint::ToTorch(tensor).to(device_);
    if (Status s = job_->optimizer().LoadStateDict(optim_state); !s.ok())
      return Failure{kExitPermanentFailure, s.ToString()};
    if (rank_ == 0) TrimMetrics(metrics_path, position_.optimizer_step);
    evaluated_epoch_ = position_.epoch;
    out_ << "resumed from " << found->path << " at optimizer step " << position_.optimizer_step
         << " (epoch " << position_.epoch << ", micro-step " << position_.micro_step << ")"
         << std::endl;
    return std::nullopt;
  }

  // This rank's part of a checkpoint: where its record stream stands.
  // Where the run is, in epochs (fractional): the schedule's clock and the records' "epoch".
  double FractionalEpoch() const {
    return static_cast<double>(position_.epoch) +
           static_cast<double>(position_.micro_step) / static_cast<double>(steps_per_epoch_);
  }

  Json RankPart() const {
    return Json(Json::Object{{"rank", rank_},
                             {"world_size", world_size_},
                             {"optimizer_step", position_.optimizer_step},
                             {"epoch", position_.epoch},
                             {"cursor", DataCursor()}});
  }
  // Where rank `rank` puts its part of the checkpoint of the current step for rank 0.
  std::string RankPartPath(int64_t rank) const {
    return config_.run.output_dir + "/.rank-parts/" +
           checkpoint::CheckpointName(position_.optimizer_step) + "/rank-" + std::to_string(rank) +
           ".json";
  }

  // With MAESTRO_PARAM_CHECKSUMS=PREFIX, appends "<step> <sha256 of every parameter's bytes>"
  // to PREFIX.rank<r> after each optimizer step: how the tests see that the ranks of a
  // data-parallel run hold bitwise identical parameters.
  void WriteParameterChecksum() {
    const char* prefix = std::getenv("MAESTRO_PARAM_CHECKSUMS");
    if (prefix == nullptr) return;
    std::string bytes;
    for (const auto& p : job_->module().parameters()) {
      torch::Tensor t = p.detach().to(torch::kCPU).contiguous();
      bytes.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
    }
    std::ofstream(std::string(prefix) + ".rank" + std::to_string(rank_), std::ios::app)
        << position_.optimizer_step << " " << Sha256Hex(bytes) << "\n";
  }

  // Drops metric lines after `step`: a killed run may have logged steps the resume redoes.
  static void TrimMetrics(const std::string& path, int64_t step) {
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
      auto json = Json::Parse(line);
      if (json.ok() && json->Find("step") && json->Find("step")->is_int() &&
          json->Find("step")->as_int() <= step) {
        kept += line + "\n";
      }
    }
    in.close();
    (void)WriteFileAtomic(path, kept);
  }

  Status SaveCheckpoint(double lr) {
    auto writer =
        checkpoint::CheckpointWriter::Begin(*storage_, position_.optimizer_step, world_size_);
    if (!writer.ok()) return writer.status();
    MAESTRO_ASSIGN_OR_RETURN(checkpoint::TensorMap weights, checkpoint::StateDict(job_->module()));
    MAESTRO_ASSIGN_OR_RETURN(
        std::string model_bytes,
        checkpoint::SerializeSafetensors({std::move(weights), {{"format", "pt"}}}));
    MAESTRO_RETURN_IF_ERROR(writer->WriteFile("model.safetensors", model_bytes, 0));
    checkpoint::TensorMap optim;
    for (const auto& [name, tensor] : job_->optimizer().StateDict()) {
      MAESTRO_ASSIGN_OR_RETURN(optim[name], checkpoint::FromTorch(tensor));
    }
    MAESTRO_ASSIGN_OR_RETURN(std::string optim_bytes,
                             checkpoint::SerializeSafetensors({std::move(optim), {}}));
    MAESTRO_RETURN_IF_ERROR(writer->WriteFile("optimizer.safetensors", optim_bytes, 0));
    const auto& identity = dataset_->identity();
    Json state(Json::Object{
        {"format_version", kTrainerStateVersion},
        {"job", config_.job},
        {"sampler_version", kSamplerVersion},
        {"augment_version", kAugmentVersion},
        {"decoder_version", kDecoderVersion},
        {"epoch", position_.epoch},
        {"micro_step", position_.micro_step},
        {"optimizer_step", position_.optimizer_step},
        {"samples_consumed", position_.optimizer_step * config_.global_batch(world_size_)},
        {"global_batch", config_.global_batch(world_size_)},
        {"world_size", world_size_},
        {"seed", static_cast<int64_t>(config_.run.seed)},
        {"lr", lr},
        {"dataset", Json(Json::Object{{"name", identity.name},
                                      {"content_hash", identity.content_hash},
                                      {"size", identity.size},
                                      {"split", config_.data.split},
                                      // the rank's stream position (records.h)
                                      {"cursor", DataCursor()}})},
        {"config", config_.ToJson()},
        {"config_hash", config_.ResultHash()},
        {"pretrained", job_->Provenance()},
        // Every random draw comes from counter-based streams keyed by (seed, epoch, sample); no
        // generator state is carried.
        {"generator_state", Json()},
    });
    MAESTRO_RETURN_IF_ERROR(writer->WriteFile("trainer_state.json", state.Dump() + "\n", 0));
    // Every rank's part: rank 0's written here, the others' read from where they put them
    // (the manifest commits only once each rank 0..world_size-1 has its file).
    MAESTRO_RETURN_IF_ERROR(writer->WriteFile("rank-0.json", RankPart().Dump() + "\n", 0));
    for (int64_t r = 1; r < world_size_; ++r) {
      MAESTRO_ASSIGN_OR_RETURN(std::string part, ReadFile(RankPartPath(r)));
      MAESTRO_RETURN_IF_ERROR(writer->WriteFile("rank-" + std::to_string(r) + ".json", part, r));
    }
    if (world_size_ > 1) {
      MAESTRO_RETURN_IF_ERROR(RemoveTree(DirName(RankPartPath(1))));
    }
    MAESTRO_RETURN_IF_ERROR(CheckAttemptFence());
    MAESTRO_RETURN_IF_ERROR(writer->Commit());
    MAESTRO_RETURN_IF_ERROR(checkpoint::ApplyRetention(*storage_, config_.checkpoint.keep_last));
    last_checkpoint_time_ = Clock::now();
    out_ << "checkpoint " << checkpoint::CheckpointName(position_.optimizer_step) << " written"
         << std::endl;
    return OkStatus();
  }

  int Loop() {
    std::ofstream metrics;
    if (rank_ == 0) metrics.open(config_.run.output_dir + "/metrics.jsonl", std::ios::app);
    const auto start = Clock::now();
    last_checkpoint_time_ = start;
    const int64_t start_step = position_.optimizer_step;
    double lr = 0;
    double loss_sum = 0;
    int64_t micro_in_step = 0;
    auto window_start = start;
    int64_t window_images = 0;
    double window_sync_s = 0;  // time in the gradient all-reduce (data-parallel runs)
    int64_t window_steps = 0;
    // The progress record's window (progress_record.h): per-step durations since the last
    // record, counted into the shared buckets.
    DurationCounts window_step_s, window_wait_s, window_sync_counts, window_checkpoint_s;
    double step_wait_s = 0;  // waiting for data in the current optimizer step's micro-batches
    double grad_norm = -1;
    auto last_step_end = start;
    RecordProgress("start", static_cast<double>(position_.epoch), 0, 0, 0);
    double logged_loss = 0, logged_rate = 0;  // the last progress line's, for the "done" record

    while (position_.optimizer_step < total_steps_) {
      const auto fetch_start = Clock::now();
      dataloader::Batch batch = source_->Next();
      step_wait_s += std::chrono::duration<double>(Clock::now() - fetch_start).count();
      for (const auto& reason : batch.skipped) {
        if (++skipped_samples_ <= 20) out_ << "warning: corrupt " << reason << " replaced\n";
      }
      if (micro_in_step == 0) {
        lr = ScheduledLearningRate(peak_lr_, config_.optim.min_lr, config_.optim.warmup_epochs,
                                   schedule_epochs_, FractionalEpoch());
      }
      auto imgs = normalize_(batch.images);
      // LibTorch's own draws (drop path) restart from a key of the micro-step, so a resumed run
      // draws the same.
      const uint64_t step_key = HashKey({config_.run.seed, static_cast<uint64_t>(batch.epoch),
                                         static_cast<uint64_t>(batch.step)});
      torch::manual_seed(HashKey({step_key, kTorchSeedPurpose}));
      torch::Tensor loss = job_->Loss(batch, imgs, HashKey({step_key, kMixupPurpose}));
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        return Fail({kExitPermanentFailure, "loss is " + std::to_string(loss_value) +
                                                " at optimizer step " +
                                                std::to_string(position_.optimizer_step) +
                                                "; stopping, the last good checkpoint is kept"});
      }
      (loss / static_cast<double>(config_.optim.accum_iter)).backward();
      loss_sum += loss_value;
      window_images += batch.images.size(0);
      ++micro_in_step;
      if (++position_.micro_step == steps_per_epoch_) {
        position_.micro_step = 0;
        ++position_.epoch;
      }
      if (micro_in_step < config_.optim.accum_iter) continue;

      double step_loss = loss_sum / static_cast<double>(micro_in_step);
      // Decisions every rank must take together: a stop signal and a checkpoint by time.
      bool stopping = g_stop_signal.load() != 0;
      bool by_time = config_.checkpoint.interval_seconds > 0 &&
                     std::chrono::duration<double>(Clock::now() - last_checkpoint_time_).count() >=
                         config_.checkpoint.interval_seconds;
      if (grad_sync_) {
        // Once per optimizer step (not per micro-batch): the global batch's mean gradient; then
        // its mean loss for the records and whether any rank was signalled or is due to save.
        const auto sync_start = Clock::now();
        if (Status s = grad_sync_->AllReduce(*comm_); !s.ok())
          return Fail({kExitRetryableFailure, "gradient all-reduce: " + s.ToString()});
        const double sync_s = std::chrono::duration<double>(Clock::now() - sync_start).count();
        window_sync_s += sync_s;
        window_sync_counts.Observe(sync_s);
        std::vector<torch::Tensor> shared = {
            torch::tensor(
                {static_cast<float>(step_loss), stopping ? 1.0f : 0.0f, by_time ? 1.0f : 0.0f})
                .to(device_)};  // where the back end reduces (CUDA for NCCL)
        if (Status s = comm_->AllReduceMean(shared); !s.ok())
          return Fail({kExitRetryableFailure, "loss all-reduce: " + s.ToString()});
        step_loss = shared[0][0].item<double>();
        stopping = shared[0][1].item<float>() > 0;
        by_time = shared[0][2].item<float>() > 0;
      }
      // The gradient norm of the steps that end a log window (reading the gradients only).
      const bool logs_next = (position_.optimizer_step + 1) % config_.log.interval_steps == 0 ||
                             position_.optimizer_step + 1 == total_steps_;
      if (config_.optim.clip_grad > 0) {
        std::vector<torch::Tensor> params;
        for (auto& p : job_->module().parameters()) {
          if (p.requires_grad()) params.push_back(p);
        }
        const double norm = torch::nn::utils::clip_grad_norm_(params, config_.optim.clip_grad);
        if (logs_next) grad_norm = norm;
      } else if (logs_next) {
        grad_norm = GradientNorm();
      }
      job_->optimizer().Step(lr);
      job_->optimizer().ZeroGrad();
      ++position_.optimizer_step;
      ++window_steps;
      window_step_s.Observe(std::chrono::duration<double>(Clock::now() - last_step_end).count());
      window_wait_s.Observe(step_wait_s);
      step_wait_s = 0;
      WriteParameterChecksum();
      loss_sum = 0;
      micro_in_step = 0;

      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const double epoch_now = FractionalEpoch();
      metrics << Json(Json::Object{{"step", position_.optimizer_step},
                                   {"epoch", epoch_now},
                                   {"loss", step_loss},
                                   {"lr", lr},
                                   {"elapsed_s", elapsed}})
                     .Dump()
              << "\n";
      if (position_.optimizer_step % config_.log.interval_steps == 0 ||
          position_.optimizer_step == total_steps_) {
        metrics.flush();
        const double window_s = std::chrono::duration<double>(Clock::now() - window_start).count();
        const double rate =
            static_cast<double>(window_images * world_size_) / std::max(window_s, 1e-9);
        const double steps_per_s =
            static_cast<double>(position_.optimizer_step - start_step) / std::max(elapsed, 1e-9);
        const double eta = static_cast<double>(total_steps_ - position_.optimizer_step) /
                           std::max(steps_per_s, 1e-9);
        char line[256];
        std::snprintf(line, sizeof(line),
                      "step %lld/%lld (%.1f%%)  epoch %.2f  loss %.4f  lr %.3e  %.0f img/s  ETA %s",
                      static_cast<long long>(position_.optimizer_step),
                      static_cast<long long>(total_steps_),
                      100.0 * static_cast<double>(position_.optimizer_step) /
                          static_cast<double>(total_steps_),
                      epoch_now, step_loss, lr, rate, FormatDuration(eta).c_str());
        out_ << line;
        if (grad_sync_) {
          std::snprintf(
              line, sizeof(line), "  all-reduce %.1f ms/step",
              1000.0 * window_sync_s / static_cast<double>(std::max<int64_t>(1, window_steps)));
          out_ << line;
        }
        out_ << std::endl;
        ProgressRecord window;
        window.has_window = true;
        window.steps = window_steps;
        window.samples = window_images;
        window.step_s = window_step_s;
        window.data_wait_s = window_wait_s;
        window.allreduce_s = window_sync_counts;
        window.checkpoint_write_s = window_checkpoint_s;
        window.grad_norm = grad_norm;
        window.checkpoint_age_s =
            std::chrono::duration<double>(Clock::now() - last_checkpoint_time_).count();
        window.checkpoint_interval_s =
            config_.checkpoint.interval_seconds > 0 ? config_.checkpoint.interval_seconds
            : config_.checkpoint.interval_steps > 0
                ? static_cast<double>(config_.checkpoint.interval_steps) * window_step_s.sum /
                      static_cast<double>(std::max<int64_t>(1, window_step_s.total()))
                : 0;
        RecordProgress("train", epoch_now, step_loss, lr, rate, std::move(window));
        logged_loss = step_loss;
        logged_rate = rate;
        window_start = Clock::now();
        window_images = 0;
        window_sync_s = 0;
        window_steps = 0;
        window_step_s = window_wait_s = window_sync_counts = window_checkpoint_s = {};
      }

      const bool finished = position_.optimizer_step == total_steps_;
      // Evaluation after every epoch and at the end, before the checkpoint of that step.
      if (position_.epoch > evaluated_epoch_ || finished) {
        evaluated_epoch_ = position_.epoch;
        auto evaluation = job_->Evaluate();
        if (!evaluation.ok())
          return Fail({kExitRetryableFailure, "evaluation: " + evaluation.status().ToString()});
        if (!evaluation->is_null()) {
          Json record(Json::Object{
              {"kind", "eval"}, {"step", position_.optimizer_step}, {"epoch", epoch_now}});
          for (const auto& [key, value] : evaluation->as_object()) record.as_object()[key] = value;
          metrics << record.Dump() << "\n";
          metrics.flush();
          char line[200];
          if (const Json* top1 = evaluation->Find("top1")) {
            std::snprintf(
                line, sizeof(line),
                "eval after step %lld (epoch %.2f): top-1 %.2f%%  top-5 %.2f%%  loss %.4f",
                static_cast<long long>(position_.optimizer_step), epoch_now, top1->as_double(),
                evaluation->Find("top5")->as_double(), evaluation->Find("loss")->as_double());
          } else {
            std::snprintf(line, sizeof(line),
                          "eval after step %lld (epoch %.2f): held-out masked-patch loss %.4f",
                          static_cast<long long>(position_.optimizer_step), epoch_now,
                          evaluation->Find("heldout_masked_loss")->as_double());
          }
          out_ << line << std::endl;
        }
      }
      const bool by_steps = config_.checkpoint.interval_steps > 0 &&
                            position_.optimizer_step % config_.checkpoint.interval_steps == 0;
      if (stopping || finished || by_steps || by_time) {
        metrics.flush();
        // Each rank other than 0 writes its part (its stream position), then rank 0 writes the
        // model and optimizer state (identical on every rank) with all the parts and commits;
        // the others wait for the commit.
        if (rank_ != 0) {
          Status s = MakeDirectories(DirName(RankPartPath(rank_)));
          if (s.ok()) s = WriteFileAtomic(RankPartPath(rank_), RankPart().Dump() + "\n");
          if (!s.ok())
            comm_->Abort("checkpoint part of rank " + std::to_string(rank_) + ": " + s.ToString());
        }
        if (distributed_) {
          if (Status s = comm_->Barrier(); !s.ok())
            return Fail({kExitRetryableFailure, "barrier: " + s.ToString()});
        }
        if (rank_ == 0) {
          const auto save_start = Clock::now();
          if (Status s = SaveCheckpoint(lr); !s.ok()) {
            if (distributed_) comm_->Abort("checkpoint: " + s.ToString());
            return Fail({kExitRetryableFailure, "checkpoint: " + s.ToString()});
          }
          window_checkpoint_s.Observe(
              std::chrono::duration<double>(Clock::now() - save_start).count());
        } else {
          last_checkpoint_time_ = Clock::now();
        }
        if (Status s = comm_->Barrier(); !s.ok())
          return Fail({kExitRetryableFailure, "barrier: " + s.ToString()});
      }
      // The next step's time starts here (its evaluation and checkpoint are not in it).
      last_step_end = Clock::now();
      if (stopping) {
        out_ << "preempted by signal " << g_stop_signal.load()
             << (world_size_ > 1 ? " (on some rank)" : "") << " after optimizer step "
             << position_.optimizer_step << "; resume with --resume auto" << std::endl;
        return kExitPreempted;
      }
    }
    out_ << "completed " << total_steps_ << " optimizer steps" << std::endl;
    RecordProgress("done", FractionalEpoch(), logged_loss, lr, logged_rate);
    if (skipped_samples_ > 0) {
      out_ << "warning: " << skipped_samples_ << " corrupt samples were replaced by the next "
           << "readable ones" << std::endl;
    }
    metrics.close();
    if (rank_ == 0) {
      if (Status s = WriteResult(); !s.ok()) return Fail({kExitRetryableFailure, s.ToString()});
    }
    return kExitCompleted;
  }

  // This rank's progress record (progress_record.h), when the worker asked for them. A record
  // that cannot be written is reported once and training goes on.
  void RecordProgress(const char* phase, double epoch, double loss, double lr,
                      double images_per_second, ProgressRecord record = {}) {
    if (progress_file_.empty()) return;
    record.phase = phase;
    record.rank = rank_;
    record.step = position_.optimizer_step;
    record.total_steps = total_steps_;
    record.epoch = epoch;
    record.loss = loss;
    record.lr = lr;
    record.images_per_second = images_per_second;
    record.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    if (Status s = AppendProgressRecord(progress_file_, record); !s.ok()) {
      std::cerr << "warning: rank " << rank_ << ": progress record: " << s.ToString()
                << " (no more are written)" << std::endl;
      progress_file_.clear();
    }
  }

  // The global gradient norm (the gradients are read, not changed).
  double GradientNorm() {
    std::vector<torch::Tensor> norms;
    for (auto& p : job_->module().parameters()) {
      if (p.grad().defined()) norms.push_back(p.grad().detach().norm());
    }
    return norms.empty() ? 0 : torch::stack(norms).norm().item<double>();
  }

  // result.json: what a scheduler reads of a finished run (docs/training.md): the job, its
  // config and hash, the weights it started from, the last evaluation and every evaluation.
  Status WriteResult() {
    const std::string metrics_path = config_.run.output_dir + "/metrics.jsonl";
    std::ifstream in(metrics_path);
    Json::Array history;
    Json last_loss;
    std::string line;
    while (std::getline(in, line)) {
      auto record = Json::Parse(line);
      if (!record.ok()) continue;
      const Json* kind = record->Find("kind");
      if (kind != nullptr && kind->is_string() && kind->as_string() == "eval") {
        record->as_object().erase("kind");
        history.push_back(*record);
      } else if (const Json* loss = record->Find("loss")) {
        last_loss = *loss;
      }
    }
    Json result(Json::Object{
        {"job", config_.job},
        {"status", "completed"},
        {"optimizer_steps", position_.optimizer_step},
        {"epochs", config_.optim.epochs},
        {"config_hash", config_.ResultHash()},
        {"config", config_.ToJson()},
        {"dataset", Json(Json::Object{{"name", dataset_->identity().name},
                                      {"content_hash", dataset_->identity().content_hash}})},
        {"pretrained", job_->Provenance()},
        {"final_train_loss", last_loss},
        {"final", history.empty() ? Json() : history.back()},
        {"evaluations", Json(std::move(history))},
        {"checkpoint",
         storage_->uri() + "/" + checkpoint::CheckpointName(position_.optimizer_step)},
    });
    MAESTRO_RETURN_IF_ERROR(CheckAttemptFence());
    MAESTRO_RETURN_IF_ERROR(
        WriteFileAtomic(config_.run.output_dir + "/result.json", result.Dump() + "\n"));
    out_ << "result " << config_.run.output_dir << "/result.json" << std::endl;
    return OkStatus();
  }

  const TrainConfig& config_;
  const TrainOptions& options_;
  std::ostringstream null_out_;  // the output of ranks other than 0 (discarded)
  std::string progress_file_;    // MAESTRO_PROGRESS_FILE; empty: no progress records
  std::ostream& out_;
  torch::Device device_;
  std::unique_ptr<dist::Communicator> comm_;
  int64_t rank_ = 0;
  int64_t world_size_ = 1;
  // A real back end (also at world size 1: NCCL under a torchrun-style launch of one process,
  // whose collectives then run like any world's).
  bool distributed_ = false;
  std::unique_ptr<dist::GradientSynchronizer> grad_sync_;
  std::unique_ptr<checkpoint::CheckpointStorage> storage_;
  std::shared_ptr<const dataloader::RecordStore> store_;  // shard data: local or the service
  std::unique_ptr<dataloader::Dataset> dataset_;
  std::unique_ptr<dataloader::BatchSource> source_;
  std::unique_ptr<TrainingJob> job_;
  PixelNormalizer normalize_;
  int64_t micro_global_batch_ = 0, steps_per_epoch_ = 0, optimizer_steps_per_epoch_ = 0,
          total_steps_ = 0;
  double schedule_epochs_ = 0;  // the learning-rate schedule's length
  double peak_lr_ = 0;
  Position position_;
  int64_t evaluated_epoch_ = 0;
  int64_t skipped_samples_ = 0;  // corrupt samples replaced in this process  // evaluation runs
                                 // when an epoch beyond this one has begun
  Clock::time_point last_checkpoint_time_;
};

}  // namespace

Status CheckAttemptFence() {
  const char* attempt = std::getenv("MAESTRO_ATTEMPT");
  const char* fence = std::getenv("MAESTRO_ATTEMPT_FENCE");
  if (attempt == nullptr || fence == nullptr) return OkStatus();
  auto current = ReadFile(fence);
  if (!current.ok()) return OkStatus();  // no fence written (yet): nothing newer exists
  const long long mine = std::atoll(attempt), latest = std::atoll(current->c_str());
  if (latest > mine) {
    return FailedPreconditionError("attempt " + std::to_string(latest) +
                                   " of this trial has started elsewhere; this attempt (" +
                                   std::to_string(mine) + ") is stale and commits nothing");
  }
  return OkStatus();
}

Result<std::shared_ptr<const dataloader::RecordStore>> OpenRecordStore(const DataConfig& data) {
  if (data.source != "shards") return std::shared_ptr<const dataloader::RecordStore>();
  if (!data.service.empty()) {
#ifdef MAESTRO_HAVE_DATA_SERVICE
    // Default: the path's last component, as maestro-data names a folder.
    const std::string name = data.dataset.empty() ? BaseName(data.path) : data.dataset;
    MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<dataloader::RecordStore> remote,
                             dataloader::ConnectDataService(data.service, name, data.split));
    return std::shared_ptr<const dataloader::RecordStore>(std::move(remote));
#else
    return InvalidArgumentError("data.service needs the build with gRPC (not MAESTRO_TORCH_ONLY)");
#endif
  }
#ifdef MAESTRO_HAVE_SHARDS
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<dataloader::ShardStore> local,
                           dataloader::OpenShardStore(data.path + "/" + data.split));
  return std::shared_ptr<const dataloader::RecordStore>(std::move(local));
#else
  return InvalidArgumentError(
      "data.source 'shards' needs the RocksDB build (not "
      "MAESTRO_TORCH_ONLY)");
#endif
}

Result<std::unique_ptr<dataloader::Dataset>> OpenDataset(const DataConfig& data) {
  if (data.source == "fashion-mnist" || data.source == "mnist") {
    return dataloader::OpenFashionMnist(data.path, data.split);
  }
  if (data.source == "shards") {
    MAESTRO_ASSIGN_OR_RETURN(auto store, OpenRecordStore(data));
    return dataloader::RecordDataset(std::move(store));
  }
  return InvalidArgumentError("data.source '" + data.source +
                              "' is not known (fashion-mnist, mnist, shards)");
}

void InstallStopSignalHandlers() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  // Slurm's warning before a preemption or the time limit (`--signal=USR1@120`, submitit's and
  // Lightning's convention): the same as SIGTERM, a checkpoint and exit 3.
  sigaction(SIGUSR1, &action, nullptr);
}

int RunTraining(const TrainConfig& config, const TrainOptions& options, std::ostream& out) {
  const bool cuda = config.run.device.rfind("cuda", 0) == 0;
  auto communicator =
      dist::CommunicatorFromEnvironment({config.dist.timeout_s, cuda, &g_stop_signal});
  if (!communicator.ok()) {
    out << "error: data-parallel launch: " << communicator.status().ToString() << std::endl;
    // A rendezvous that failed (a peer never came) may succeed when the gang is started again.
    return communicator.status().code() == StatusCode::kUnavailable ? kExitRetryableFailure
                                                                    : kExitPermanentFailure;
  }
  if ((*communicator)->backend() == "nccl" && config.run.device == "cuda") {
    // One GPU per local rank (torchrun's LOCAL_RANK, Open MPI's for ranks from mpirun, srun's
    // SLURM_LOCALID), among the GPUs this process sees: a task Slurm gave one GPU of its own
    // (--gpus-per-task=1) sees just that one, as cuda:0.
    TrainConfig local = config;
    const char* local_rank = std::getenv("LOCAL_RANK");
    if (local_rank == nullptr) local_rank = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (local_rank == nullptr && std::getenv("SLURM_STEP_ID") != nullptr) {
      local_rank = std::getenv("SLURM_LOCALID");
    }
    int64_t index = local_rank != nullptr ? std::atoll(local_rank) : 0;
    if (torch::cuda::device_count() == 1) index = 0;
    local.run.device = "cuda:" + std::to_string(index);
    return Trainer(local, options, out, std::move(*communicator)).Run();
  }
  return Trainer(config, options, out, std::move(*communicator)).Run();
}

}  // namespace maestro::engine
