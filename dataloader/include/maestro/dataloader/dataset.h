// What the training engine reads: a dataset of images addressed by a global index, and the
// identity a checkpoint records. Implementations must be thread-safe for concurrent Get():
// the loader calls it from several threads. The RocksDB shard store and the streaming data
// service implement this same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro::dataloader {

// Enough to tell whether a checkpoint was written against this data.
struct DatasetIdentity {
  std::string name;          // e.g. "fashion-mnist/train"
  std::string content_hash;  // sha256 over the samples and labels
  int64_t size = 0;
  int64_t num_classes = 0;
};

// One stored sample, decoded: height x width x channels uint8 pixels (HWC) and its label.
struct RawSample {
  int64_t index = 0;
  int64_t label = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;
};

// A sample whose pixels are still encoded, so that a crop can decode only its region (JPEG;
// a PNG is decoded whole).
struct EncodedSample {
  int64_t index = 0;
  int64_t label = 0;
  int64_t height = 0, width = 0;  // of the full image
  std::string bytes;              // the JPEG or PNG file
};

// A crop box in source pixels.
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual const DatasetIdentity& identity() const = 0;
  // The sample at `index` in [0, size()). INVALID_ARGUMENT outside; DATA_LOSS for an
  // unreadable record.
  virtual Result<RawSample> Get(int64_t index) const = 0;
  // Whether samples are stored encoded: then GetEncoded serves them and the loader decodes
  // only each crop's region.
  virtual bool holds_encoded() const { return false; }
  virtual Result<EncodedSample> GetEncoded(int64_t index) const {
    return FailedPreconditionError(identity().name + " stores decoded pixels; use Get (sample " +
                                   std::to_string(index) + ")");
  }
};

// Fashion-MNIST (or MNIST) from the four IDX files in `dir` (gzip-compressed or not),
// split "train" or "test". Held in memory (47 MB for train). NOT_FOUND names a missing file.
// `num_classes`: the labels' range (IDX files declare none); a label outside [0, num_classes)
// is DATA_LOSS naming the image.
Result<std::unique_ptr<Dataset>> OpenFashionMnist(const std::string& dir, const std::string& split,
                                                  int64_t num_classes = 10);

}  // namespace maestro::dataloader
