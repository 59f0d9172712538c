#include "maestro/shared/version.h"

#ifndef MAESTRO_VERSION
#define MAESTRO_VERSION "0.0.0"
#endif
#ifndef MAESTRO_GIT_COMMIT
#define MAESTRO_GIT_COMMIT "unknown"
#endif

namespace maestro {

std::string MaestroBuild() { return std::string(MAESTRO_VERSION) + "+" + MAESTRO_GIT_COMMIT; }

}  // namespace maestro
