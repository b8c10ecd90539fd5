// Writes an export folder so that it appears complete or not at all.
#pragma once

#include <string>

#include "exporter/bundle.h"

namespace exporter {

// Writes every file of `bundle` into `<exports_dir>/<bundle version>`: first
// into a hidden temporary folder beside it, each file fsynced, then renamed
// into place and the parent fsynced. Returns the folder's path. Throws
// std::runtime_error (with the path and errno text) when the folder already
// exists or a step fails; a failed attempt leaves no folder under the final
// name. Creates `exports_dir` if missing.
std::string write_bundle(const Bundle& bundle, const std::string& exports_dir);

}  // namespace exporter
