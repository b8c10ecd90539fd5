// Writes an export folder so that it appears complete or not at all, and
// checks one on disk against its digest.
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

// content_digest of the export folder `folder` as it is on disk: the
// kContentFiles read from it in 1 MiB pieces (never whole). Equals the
// Bundle's digest for a folder write_bundle wrote, unless a file changed since.
// Throws std::runtime_error naming a file that is missing, not a regular file
// or unreadable.
std::string folder_digest(const std::string& folder);

}  // namespace exporter
