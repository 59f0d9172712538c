#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/idx.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/sha256.h"

namespace maestro::dataloader {
namespace {

class FashionMnist : public Dataset {
 public:
  FashionMnist(IdxArray images, IdxArray labels, DatasetIdentity identity)
      : images_(std::move(images)), labels_(std::move(labels)), identity_(std::move(identity)) {}

  int64_t size() const override { return identity_.size; }
  const DatasetIdentity& identity() const override { return identity_; }

  Result<RawSample> Get(int64_t index) const override {
    if (index < 0 || index >= size()) {
      return InvalidArgumentError("sample index " + std::to_string(index) + " outside [0, " +
                                  std::to_string(size()) + ")");
    }
    RawSample sample;
    sample.index = index;
    sample.label = labels_.data[static_cast<size_t>(index)];
    sample.height = images_.dims[1];
    sample.width = images_.dims[2];
    sample.channels = 1;
    const size_t bytes = static_cast<size_t>(sample.height * sample.width);
    auto begin =
        images_.data.begin() + static_cast<std::ptrdiff_t>(bytes * static_cast<size_t>(index));
    sample.pixels.assign(begin, begin + static_cast<std::ptrdiff_t>(bytes));
    return sample;
  }

 private:
  IdxArray images_, labels_;
  DatasetIdentity identity_;
};

// The file, with or without the .gz Debian uses.
std::string Find(const std::string& dir, const std::string& stem) {
  std::string plain = dir + "/" + stem;
  if (PathExists(plain)) return plain;
  return plain + ".gz";
}

}  // namespace

Result<std::unique_ptr<Dataset>> OpenFashionMnist(const std::string& dir, const std::string& split,
                                                  int64_t num_classes) {
  if (num_classes < 1 || num_classes > 256) {
    return InvalidArgumentError("num_classes " + std::to_string(num_classes) +
                                " is outside [1, 256] (IDX labels are bytes)");
  }
  std::string prefix;
  if (split == "train")
    prefix = "train";
  else if (split == "test")
    prefix = "t10k";
  else
    return InvalidArgumentError("split '" + split + "' is not train or test");
  MAESTRO_ASSIGN_OR_RETURN(IdxArray images, ReadIdx(Find(dir, prefix + "-images-idx3-ubyte")));
  MAESTRO_ASSIGN_OR_RETURN(IdxArray labels, ReadIdx(Find(dir, prefix + "-labels-idx1-ubyte")));
  if (images.dims.size() != 3 || labels.dims.size() != 1 || images.dims[0] != labels.dims[0]) {
    return DataLossError(dir + ": image and label files of split '" + split + "' do not agree");
  }
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= num_classes) {
      return DataLossError(dir + ": label " + std::to_string(labels.data[i]) + " of image " +
                           std::to_string(i) + " of split '" + split + "' is not below the " +
                           std::to_string(num_classes) + " classes");
    }
  }
  Sha256 hasher;
  hasher.Update(
      std::string_view(reinterpret_cast<const char*>(images.data.data()), images.data.size()));
  hasher.Update(
      std::string_view(reinterpret_cast<const char*>(labels.data.data()), labels.data.size()));
  DatasetIdentity identity{"fashion-mnist/" + split, hasher.HexDigest(),
                           static_cast<int64_t>(images.dims[0]), num_classes};
  return std::unique_ptr<Dataset>(
      new FashionMnist(std::move(images), std::move(labels), std::move(identity)));
}

}  // namespace maestro::dataloader
