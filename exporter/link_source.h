// Reads the links to export from PostgreSQL (the exporter's only database code).
#pragma once

#include <string>
#include <vector>

#include "exporter/export_entry.h"

namespace exporter {

// Every link that is neither disabled nor expired, ordered by code, with
// hotness 0 (selection by recent clicks comes with the visit counts). Opens
// its own connection to `database_url`. Throws pqxx exceptions (std::exception)
// when the database cannot be read.
std::vector<ExportEntry> load_active_links(const std::string& database_url);

}  // namespace exporter
