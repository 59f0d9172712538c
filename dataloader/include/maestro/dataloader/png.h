// PNG decoding with libpng's simplified API, for image folders that hold PNG files (ImageNet has
// one, named .JPEG). Pixels come out 8-bit RGB (gray and palette images expanded; an alpha
// channel is dropped, as Pillow's convert("RGB") drops it). Thread-safe.
#pragma once

#include <string_view>

#include "maestro/dataloader/dataset.h"
#include "maestro/shared/status.h"

namespace maestro::dataloader {

// True when `bytes` start with the PNG signature.
bool LooksLikePng(std::string_view bytes);

// The whole image as HWC RGB. DATA_LOSS for a corrupt or truncated file.
Result<RawSample> DecodePng(std::string_view bytes);

}  // namespace maestro::dataloader
