// A persistent thread pool for large calls. One pool per process, shared by every addon instance (main thread,
// worker threads) and by async jobs on libuv threads; it holds no JavaScript values. The caller of
// parallel_for works on its own job too, so a call never waits for a pool thread that is busy elsewhere.
#pragma once

#include <cstddef>

namespace rmsnorm {

// Calls fn(ctx, task) for every task in [0, tasks), on the calling thread and up to threads - 1 pool threads,
// and returns when all are done. Tasks must be independent; which thread runs which task is unspecified, so
// callers give each task a fixed piece of work (a fixed row block) to keep results independent of scheduling.
void parallel_for(size_t tasks, unsigned threads, void (*fn)(void* ctx, size_t task), void* ctx);

// Threads the machine offers (std::thread::hardware_concurrency, at least 1).
unsigned hardware_threads();

// Typed convenience wrapper: fn(task) for every task.
template <typename Fn>
void parallel_for(size_t tasks, unsigned threads, Fn& fn) {
  parallel_for(
      tasks, threads, [](void* ctx, size_t task) { (*static_cast<Fn*>(ctx))(task); }, &fn);
}

}  // namespace rmsnorm
