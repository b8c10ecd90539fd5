#include "origin/thread_priority.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace origin {
namespace {

struct Priority {
  int nice = 0;
  int policy = -1;
};

Priority of_this_thread() {
  Priority p;
  errno = 0;
  p.nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
  sched_param param{};
  pthread_getschedparam(pthread_self(), &p.policy, &param);
  return p;
}

TEST(ThreadPriority, LowersTheCallingThreadAndWhatItStartsButNotOthers) {
  const Priority before = of_this_thread();
  Priority lowered;
  Priority child;
  bool ok = false;
  std::thread([&] {
    ok = lower_this_thread_priority(before.nice + 5 > 19 ? 19 : before.nice + 5);
    lowered = of_this_thread();
    std::thread([&] { child = of_this_thread(); }).join();
  }).join();
  ASSERT_TRUE(ok);
  EXPECT_EQ(lowered.nice, before.nice + 5 > 19 ? 19 : before.nice + 5);
  EXPECT_EQ(lowered.policy, SCHED_BATCH);
  EXPECT_EQ(child.nice, lowered.nice) << "a thread started afterwards inherits the nice value";
  EXPECT_EQ(child.policy, SCHED_BATCH);
  const Priority after = of_this_thread();
  EXPECT_EQ(after.nice, before.nice) << "the test's own thread is untouched";
  EXPECT_EQ(after.policy, before.policy);
}

}  // namespace
}  // namespace origin
