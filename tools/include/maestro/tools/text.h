// Draws short captions into an Image with a built-in 3x5 pixel font (upper-case letters,
// digits and common punctuation; lower case is drawn as upper case, unknown characters as
// blanks). For labelling generated pictures without a font library.
#pragma once

#include <string>

#include "maestro/tools/png.h"

namespace maestro::tools {

// Width in pixels of `text` at `scale` (4 * scale per character, less the last gap).
int64_t TextWidth(const std::string& text, int64_t scale);
// Draws `text` with its top-left corner at (x, y), each font pixel a scale x scale square of
// `value` (all channels). Pixels outside the image are clipped.
void DrawText(Image& image, int64_t x, int64_t y, const std::string& text, int64_t scale,
              uint8_t value);

}  // namespace maestro::tools
