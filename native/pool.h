// Persistent thread pools for large calls. Two per process, shared by every addon instance (main thread, worker
// threads); they hold no JavaScript values.
//
//   kNormal      sync calls. The caller works on its own job too, so a call never waits for a pool thread that
//                is busy elsewhere.
//   kBackground  async calls. Its threads run at a lower scheduling priority than any thread of normal priority
//                (the JavaScript thread above all): they use the cores while the event loop sleeps and yield
//                them the moment it wakes. The caller (a libuv thread, normal priority) only waits, so all of
//                the work runs at the low priority. docs/async.md says why.
#pragma once

#include <cstddef>

namespace rmsnorm {

enum class PoolKind { kNormal, kBackground };

// Calls fn(ctx, task) for every task in [0, tasks), on up to `threads` threads, and returns when all are done.
// kNormal: the calling thread and up to threads - 1 pool threads (a single task, or threads <= 1, runs on
// the caller). kBackground: up to `threads` pool threads, never the caller, whatever the count. Tasks must be
// independent; which thread runs which task is unspecified, so callers give each task a fixed piece of work (a
// fixed row block) to keep results independent of scheduling.
// kBackground with patience_ns > 0: when the pool's threads have not finished within that time (other
// processes hold every core, and idle-priority threads wait as long as those stay busy), the caller takes the
// tasks still unclaimed itself.
void parallel_for(size_t tasks, unsigned threads, void (*fn)(void* ctx, size_t task), void* ctx,
                  PoolKind kind = PoolKind::kNormal, double patience_ns = 0);

// Threads the machine offers (std::thread::hardware_concurrency, at least 1).
unsigned hardware_threads();

// The time in nanoseconds of the fastest of a few round trips to a thread of the normal pool (hand it an empty
// task, wait until it is done): to one blocked since its last job (`blocked`: the least an async call pays to
// leave the calling thread and come back), or to one still spinning after it (a call right after another).
double round_trip_ns(bool blocked);

// Typed convenience wrapper: fn(task) for every task.
template <typename Fn>
void parallel_for(size_t tasks, unsigned threads, Fn& fn, PoolKind kind = PoolKind::kNormal, double patience_ns = 0) {
  parallel_for(
      tasks, threads, [](void* ctx, size_t task) { (*static_cast<Fn*>(ctx))(task); }, &fn, kind, patience_ns);
}

}  // namespace rmsnorm
