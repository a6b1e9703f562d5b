#include "pool.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace rmsnorm {

namespace {

struct Job {
  void (*fn)(void*, size_t);
  void* ctx;
  size_t tasks;
  std::atomic<size_t> next{0};  // next task to hand out
  std::atomic<size_t> done{0};  // tasks finished
  unsigned helpers_wanted;      // pool threads that may still join (guarded by the pool's mutex)
  unsigned users = 0;           // pool threads inside this job now (guarded by the pool's mutex)
};

class Pool {
 public:
  // Pool threads are detached and live until the process exits: joining them from a static destructor could
  // deadlock against a worker_thread's exit, and an idle thread blocked on a condition variable costs nothing.
  static Pool& instance() {
    static Pool* pool = new Pool();
    return *pool;
  }

  void run(size_t tasks, unsigned threads, void (*fn)(void*, size_t), void* ctx) {
    if (tasks == 0) return;
    if (threads <= 1 || tasks == 1) {
      for (size_t t = 0; t < tasks; ++t) fn(ctx, t);
      return;
    }
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.tasks = tasks;
    const size_t helpers = (tasks < threads ? tasks : threads) - 1;
    job.helpers_wanted = static_cast<unsigned>(helpers);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      grow(helpers);
      queue_.push_back(&job);
    }
    work_available_.notify_all();
    work_on(job);
    // Our own share is done: wait for tasks still running elsewhere, then make sure no pool thread can pick
    // the job up again (it lives on this stack).
    {
      std::unique_lock<std::mutex> lock(mutex_);
      remove(&job);
      job_done_.wait(lock, [&] { return job.done.load(std::memory_order_acquire) == job.tasks && job.users == 0; });
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable work_available_;
  std::condition_variable job_done_;
  std::deque<Job*> queue_;
  size_t threads_ = 0;

  void grow(size_t wanted) {
    for (; threads_ < wanted; ++threads_) std::thread([this] { worker(); }).detach();
  }

  void remove(Job* job) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (*it == job) {
        queue_.erase(it);
        return;
      }
    }
  }

  static void work_on(Job& job) {
    for (;;) {
      const size_t t = job.next.fetch_add(1, std::memory_order_relaxed);
      if (t >= job.tasks) return;
      job.fn(job.ctx, t);
      job.done.fetch_add(1, std::memory_order_release);
    }
  }

  void worker() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      work_available_.wait(lock, [&] { return pick() != nullptr; });
      Job* job = pick();
      --job->helpers_wanted;
      ++job->users;
      lock.unlock();
      work_on(*job);
      lock.lock();
      --job->users;
      job_done_.notify_all();
    }
  }

  // The oldest job that still has tasks to hand out and wants another helper (mutex_ held).
  Job* pick() {
    for (Job* job : queue_) {
      if (job->helpers_wanted > 0 && job->next.load(std::memory_order_relaxed) < job->tasks) return job;
    }
    return nullptr;
  }
};

}  // namespace

void parallel_for(size_t tasks, unsigned threads, void (*fn)(void* ctx, size_t task), void* ctx) {
  Pool::instance().run(tasks, threads, fn, ctx);
}

unsigned hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

}  // namespace rmsnorm
