#include "origin/thread_priority.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace origin {

bool lower_this_thread_priority(int nice) {
  sched_param param{};
  param.sched_priority = 0;
  const bool batch = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param) == 0;
  // PRIO_PROCESS with a thread id sets that one thread's nice value on Linux.
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  const bool niced = ::setpriority(PRIO_PROCESS, tid, nice) == 0;
  return batch && niced;
}

}  // namespace origin
