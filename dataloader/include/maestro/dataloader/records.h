// Stored records and the streams that deliver them (the data path).
//
// A record is what a shard stores for one sample: a 16-byte header (version, payload format,
// label, original size) and the payload (raw pixels, or the JPEG file's bytes). A RecordStore
// gives records by global index; a RecordStream gives one rank's records in the sampler's
// order (sampler.h) from a cursor, across epochs. The local shard reader (shards.h) and the
// data service's client (data_client.h) are both RecordStores, so the loader sees the same
// records, in the same order, whichever it reads from.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/sampler.h"
#include "maestro/shared/status.h"

namespace maestro::dataloader {

// How a record's payload is encoded.
enum class RecordFormat : uint8_t {
  kRawU8 = 0,  // height x width x channels uint8 pixels, HWC
  kJpeg = 1,   // a JPEG file's bytes ("original" storage keeps the source file unchanged)
  kPng = 2,    // a PNG file's bytes (kept unchanged by "original" storage; decoded to RGB)
};

// The stored value of a decoded sample / of an encoded image.
std::string EncodeRecord(const RawSample& sample);
std::string EncodeEncodedRecord(RecordFormat format, int64_t label, int64_t height, int64_t width,
                                int64_t channels, std::string_view payload);
// The payload format of a stored value. DATA_LOSS for a value that is not a record of this
// version.
Result<RecordFormat> RecordFormatOf(std::string_view value, int64_t index);
// Decodes a stored value into pixels (JPEG payloads to RGB). DATA_LOSS for a value that is not
// a record of this version or whose payload does not decode.
Result<RawSample> DecodeRecord(std::string_view value, int64_t index);
// An encoded (JPEG or PNG) record's payload and header, not decoded. DATA_LOSS for another
// record.
Result<EncodedSample> DecodeEncodedRecord(std::string_view value, int64_t index);

// Where one rank's stream starts (the fields of the data service's StreamOpen).
struct StreamSpec {
  uint64_t seed = 0;
  int64_t global_batch = 1;  // samples per global step, all ranks
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t epoch = 0;   // first epoch
  int64_t cursor = 0;  // position in the rank's epoch sequence
  int64_t limit = 0;   // records to deliver; 0: unbounded

  // Records of the rank's epoch sequence for a dataset of `dataset_size` records.
  int64_t EpochLength(int64_t dataset_size) const;
  // INVALID_ARGUMENT, naming the field, unless the spec can stream a dataset of that size:
  // 0 <= rank < world_size, world_size divides global_batch, 0 < global_batch <= size,
  // epoch >= 0, 0 <= cursor < EpochLength, limit >= 0.
  Status Validate(int64_t dataset_size) const;
};

// One record of a stream.
struct StreamedRecord {
  int64_t epoch = 0;
  int64_t cursor = 0;  // position in the rank's epoch sequence
  int64_t index = 0;   // global index
  std::string value;
};

// A rank's records in sampler order. Not thread-safe: one consumer.
class RecordStream {
 public:
  virtual ~RecordStream() = default;
  // The next record into `out`: true; false once `limit` records were delivered. Errors:
  // DATA_LOSS (a record that cannot be read), UNAVAILABLE (the service went away).
  virtual Result<bool> Next(StreamedRecord& out) = 0;
  // Ends the stream from another thread: a blocked Next() returns, later ones fail
  // (UNAVAILABLE). Thread-safe; a stream that never blocks need not override it.
  virtual void Cancel() {}
};

// Records by global index. Thread-safe for concurrent Read() and OpenStream().
class RecordStore {
 public:
  virtual ~RecordStore() = default;
  virtual const DatasetIdentity& identity() const = 0;
  // Whether the records hold encoded (JPEG) images.
  virtual bool holds_encoded() const = 0;
  // The stored value of `index`. INVALID_ARGUMENT outside [0, size), DATA_LOSS for an
  // unreadable record.
  virtual Result<std::string> Read(int64_t index) const = 0;
  // The stream of `spec`; INVALID_ARGUMENT for a spec Validate() rejects. This default reads
  // the records one by one through Read(); the data service's client streams them instead.
  // The store must outlive the stream.
  virtual Result<std::unique_ptr<RecordStream>> OpenStream(const StreamSpec& spec) const;
};

// The samples of `store` as a Dataset (Get decodes records, GetEncoded leaves JPEGs encoded).
std::unique_ptr<Dataset> RecordDataset(std::shared_ptr<const RecordStore> store);

}  // namespace maestro::dataloader
