#include "maestro/dataloader/records.h"

#include <vector>

#ifdef MAESTRO_HAVE_JPEG
#include "maestro/dataloader/jpeg.h"
#endif
#ifdef MAESTRO_HAVE_PNG
#include "maestro/dataloader/png.h"
#endif

namespace maestro::dataloader {
namespace {

constexpr uint8_t kRecordVersion = 1;
constexpr size_t kRecordHeader = 16;

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// The fixed 16 bytes in front of every record's payload.
struct RecordHeader {
  uint8_t format = 0;
  int64_t label = 0, height = 0, width = 0, channels = 0;
};

Result<RecordHeader> ParseRecordHeader(std::string_view value, int64_t index) {
  if (value.size() < kRecordHeader || static_cast<uint8_t>(value[0]) != kRecordVersion) {
    return DataLossError("record " + std::to_string(index) + " is not a version-1 record");
  }
  RecordHeader h;
  h.format = static_cast<uint8_t>(value[1]);
  h.label = static_cast<int32_t>(GetU32(value.data() + 2));
  h.height = GetU32(value.data() + 6);
  h.width = GetU32(value.data() + 10);
  h.channels = static_cast<uint8_t>(value[14]);
  return h;
}

// Reads the rank's sequence record by record through RecordStore::Read.
class ReadingStream : public RecordStream {
 public:
  ReadingStream(const RecordStore& store, const StreamSpec& spec)
      : store_(store),
        spec_(spec),
        sampler_(store.identity().size, spec.global_batch, spec.seed),
        per_rank_(spec.global_batch / spec.world_size),
        epoch_length_(spec.EpochLength(store.identity().size)),
        epoch_(spec.epoch),
        cursor_(spec.cursor) {}

  Result<bool> Next(StreamedRecord& out) override {
    if (spec_.limit > 0 && delivered_ >= spec_.limit) return false;
    if (cursor_ == epoch_length_) {
      ++epoch_;
      cursor_ = 0;
    }
    const int64_t step = cursor_ / per_rank_;
    if (step != batch_step_ || epoch_ != batch_epoch_) {
      batch_ = sampler_.RankBatch(epoch_, step, spec_.rank, spec_.world_size);
      batch_step_ = step;
      batch_epoch_ = epoch_;
    }
    out.epoch = epoch_;
    out.cursor = cursor_;
    out.index = batch_[static_cast<size_t>(cursor_ % per_rank_)];
    MAESTRO_ASSIGN_OR_RETURN(out.value, store_.Read(out.index));
    ++cursor_;
    ++delivered_;
    return true;
  }

 private:
  const RecordStore& store_;
  StreamSpec spec_;
  EpochSampler sampler_;
  int64_t per_rank_, epoch_length_, epoch_, cursor_;
  int64_t delivered_ = 0;
  int64_t batch_epoch_ = -1, batch_step_ = -1;
  std::vector<int64_t> batch_;
};

class StoreDataset : public Dataset {
 public:
  explicit StoreDataset(std::shared_ptr<const RecordStore> store) : store_(std::move(store)) {}
  int64_t size() const override { return store_->identity().size; }
  const DatasetIdentity& identity() const override { return store_->identity(); }
  bool holds_encoded() const override { return store_->holds_encoded(); }
  Result<RawSample> Get(int64_t index) const override {
    MAESTRO_ASSIGN_OR_RETURN(std::string value, store_->Read(index));
    return DecodeRecord(value, index);
  }
  Result<EncodedSample> GetEncoded(int64_t index) const override {
    MAESTRO_ASSIGN_OR_RETURN(std::string value, store_->Read(index));
    return DecodeEncodedRecord(value, index);
  }

 private:
  std::shared_ptr<const RecordStore> store_;
};

}  // namespace

std::string EncodeEncodedRecord(RecordFormat format, int64_t label, int64_t height, int64_t width,
                                int64_t channels, std::string_view payload) {
  std::string out;
  out.reserve(kRecordHeader + payload.size());
  out.push_back(static_cast<char>(kRecordVersion));
  out.push_back(static_cast<char>(format));
  PutU32(out, static_cast<uint32_t>(static_cast<int32_t>(label)));
  PutU32(out, static_cast<uint32_t>(height));
  PutU32(out, static_cast<uint32_t>(width));
  out.push_back(static_cast<char>(channels));
  out.push_back('\0');
  out.append(payload);
  return out;
}

std::string EncodeRecord(const RawSample& sample) {
  return EncodeEncodedRecord(
      RecordFormat::kRawU8, sample.label, sample.height, sample.width, sample.channels,
      std::string_view(reinterpret_cast<const char*>(sample.pixels.data()), sample.pixels.size()));
}

Result<RecordFormat> RecordFormatOf(std::string_view value, int64_t index) {
  MAESTRO_ASSIGN_OR_RETURN(RecordHeader header, ParseRecordHeader(value, index));
  if (header.format > static_cast<uint8_t>(RecordFormat::kPng)) {
    return DataLossError("record " + std::to_string(index) + " has payload format " +
                         std::to_string(header.format) + ", which this reader does not decode");
  }
  return static_cast<RecordFormat>(header.format);
}

Result<EncodedSample> DecodeEncodedRecord(std::string_view value, int64_t index) {
  auto header = ParseRecordHeader(value, index);
  if (!header.ok() || (header->format != static_cast<uint8_t>(RecordFormat::kJpeg) &&
                       header->format != static_cast<uint8_t>(RecordFormat::kPng))) {
    return DataLossError("record " + std::to_string(index) +
                         " is not a version-1 JPEG or PNG record");
  }
  EncodedSample out;
  out.index = index;
  out.label = header->label;
  out.height = header->height;
  out.width = header->width;
  out.bytes.assign(value.substr(kRecordHeader));
  return out;
}

Result<RawSample> DecodeRecord(std::string_view value, int64_t index) {
  const std::string where = "record " + std::to_string(index);
  MAESTRO_ASSIGN_OR_RETURN(RecordFormat format, RecordFormatOf(value, index));
  MAESTRO_ASSIGN_OR_RETURN(RecordHeader header, ParseRecordHeader(value, index));
  if (format == RecordFormat::kJpeg) {
#ifdef MAESTRO_HAVE_JPEG
    auto decoded =
        DecodeJpegRegion(value.substr(kRecordHeader), {0, 0, header.height, header.width});
    if (!decoded.ok()) return DataLossError(where + ": " + decoded.status().message());
    decoded->index = index;
    decoded->label = header.label;
    return decoded;
#else
    return FailedPreconditionError(where + " is a JPEG and this build has no libjpeg");
#endif
  }
  if (format == RecordFormat::kPng) {
#ifdef MAESTRO_HAVE_PNG
    auto decoded = DecodePng(value.substr(kRecordHeader));
    if (!decoded.ok()) return DataLossError(where + ": " + decoded.status().message());
    decoded->index = index;
    decoded->label = header.label;
    return decoded;
#else
    return FailedPreconditionError(where + " is a PNG and this build has no libpng");
#endif
  }
  RawSample sample;
  sample.index = index;
  sample.label = header.label;
  sample.height = header.height;
  sample.width = header.width;
  sample.channels = header.channels;
  const auto expected = static_cast<size_t>(sample.height * sample.width * sample.channels);
  if (value.size() - kRecordHeader != expected) {
    return DataLossError(where + " holds " + std::to_string(value.size() - kRecordHeader) +
                         " pixel bytes, its size says " + std::to_string(expected));
  }
  sample.pixels.assign(value.begin() + kRecordHeader, value.end());
  return sample;
}

int64_t StreamSpec::EpochLength(int64_t dataset_size) const {
  if (global_batch <= 0 || world_size <= 0) return 0;
  return dataset_size / global_batch * (global_batch / world_size);
}

Status StreamSpec::Validate(int64_t dataset_size) const {
  auto bad = [](const std::string& message) { return InvalidArgumentError(message); };
  if (world_size <= 0) return bad("world_size " + std::to_string(world_size) + " must be >= 1");
  if (rank < 0 || rank >= world_size) {
    return bad("rank " + std::to_string(rank) + " outside [0, world_size " +
               std::to_string(world_size) + ")");
  }
  if (global_batch <= 0 || global_batch > dataset_size) {
    return bad("global_batch " + std::to_string(global_batch) + " outside [1, " +
               std::to_string(dataset_size) + " records]");
  }
  if (global_batch % world_size != 0) {
    return bad("world_size " + std::to_string(world_size) + " does not divide global_batch " +
               std::to_string(global_batch));
  }
  if (epoch < 0) return bad("epoch " + std::to_string(epoch) + " is negative");
  const int64_t length = EpochLength(dataset_size);
  if (cursor < 0 || cursor >= length) {
    return bad("cursor " + std::to_string(cursor) + " outside the rank's epoch [0, " +
               std::to_string(length) + ")");
  }
  if (limit < 0) return bad("limit " + std::to_string(limit) + " is negative");
  return OkStatus();
}

Result<std::unique_ptr<RecordStream>> RecordStore::OpenStream(const StreamSpec& spec) const {
  MAESTRO_RETURN_IF_ERROR(spec.Validate(identity().size));
  return std::unique_ptr<RecordStream>(new ReadingStream(*this, spec));
}

std::unique_ptr<Dataset> RecordDataset(std::shared_ptr<const RecordStore> store) {
  return std::make_unique<StoreDataset>(std::move(store));
}

}  // namespace maestro::dataloader
