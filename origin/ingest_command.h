// `origin ingest`: standalone ingestion of visit logs, e.g. nginx's edge log
// on an edge host.
//
//   origin ingest --source NAME=PATH [--source NAME=PATH ...] [--once]
//
// One Ingester (ingester.h) per source, each on its own thread with its own
// database connection. PATH naming a directory is a journal directory,
// anything else a log file. Configured by the environment like `origin
// serve`: DATABASE_URL, VISIT_IP_MODE, VISITS_RETENTION_DAYS, INGEST_*.
//
// Without --once it follows the sources until SIGTERM or SIGINT, then
// finishes the batch in progress and exits 0. With --once it ingests what
// the sources hold and exits 0 once every source is caught up (1 if a
// signal came first). Either way it prints one JSON line of counters per
// source on stdout before exiting. Exit 2: bad arguments; 1: bad
// configuration or a database schema that is behind.
#pragma once

#include <string>
#include <vector>

namespace origin {

// Runs the command with `args`, the arguments after "ingest". Returns the
// exit status. Blocks SIGTERM/SIGINT in the calling thread and waits for
// them itself; call it from main before starting other threads.
int run_ingest_command(const std::vector<std::string>& args);

}  // namespace origin
