// CPU priority of background threads, so that they yield the cores to the io
// threads answering redirects.
#pragma once

namespace origin {

// Gives the calling thread the scheduling policy SCHED_BATCH (treated as
// CPU-bound: it does not preempt other threads when it wakes up) and the
// nice value `nice` (1-19: higher is a smaller share of a busy CPU). Threads
// it creates afterwards inherit both. An unprivileged thread can lower its
// priority but not raise it back. Returns false when either change failed
// (the thread then runs on with what did apply).
bool lower_this_thread_priority(int nice);

}  // namespace origin
