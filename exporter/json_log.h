// The exporter's log: every line written to a JsonLogStream leaves on stderr
// as one JSON object {"time":...,"level":...,"msg":<the line>}, the same
// shape as the origin's log lines.
#pragma once

#include <map>
#include <mutex>
#include <ostream>
#include <streambuf>
#include <string>
#include <thread>

namespace exporter {

// Buffers characters until '\n', then writes the JSON line with one
// write(2) to stderr. Each thread has its own partial line, so threads
// writing at once never mix their lines.
class JsonLineBuffer : public std::streambuf {
 public:
  explicit JsonLineBuffer(std::string level) : level_(std::move(level)) {}
  ~JsonLineBuffer() override;  // a last line without '\n' is written too

 protected:
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;

 private:
  void emit(std::string& line);
  std::string level_;
  std::mutex mu_;  // guards lines_
  std::map<std::thread::id, std::string> lines_;
};

class JsonLogStream : public std::ostream {
 public:
  explicit JsonLogStream(std::string level) : std::ostream(nullptr), buffer_(std::move(level)) {
    rdbuf(&buffer_);
  }

 private:
  JsonLineBuffer buffer_;
};

}  // namespace exporter
