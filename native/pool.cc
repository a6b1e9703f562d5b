#include "pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#elif defined(__APPLE__)
#include <pthread.h>
#elif defined(_WIN32)
#include <windows.h>
#endif

namespace rmsnorm {

namespace {

// Lowers the calling thread's scheduling priority for good (an unprivileged thread cannot raise it again, which
// is why the background pool has threads of its own). Returns how, or "none".
const char* lower_priority() {
#if defined(__linux__)
  // SCHED_IDLE: the thread runs only when no thread of normal priority wants the core, and a normal thread
  // waking up preempts it at once. Any thread may switch itself to it. Where it is refused (a seccomp filter,
  // an old kernel), nice 19 (setpriority on the thread's id applies to that thread alone on Linux).
  sched_param param{};
  param.sched_priority = 0;
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) == 0) return "sched_idle";
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19) == 0) return "nice";
  return "none";
#elif defined(__APPLE__)
  // Utility, not background: background confines the thread to the efficiency cores and throttles its I/O.
  return pthread_set_qos_class_self_np(QOS_CLASS_UTILITY, 0) == 0 ? "qos_utility" : "none";
#elif defined(_WIN32)
  return SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_LOWEST) ? "lowest" : "none";
#else
  return "none";
#endif
}

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
  static Pool& instance(PoolKind kind) {
    static Pool* normal = new Pool(false);
    static Pool* background = new Pool(true);
    return kind == PoolKind::kBackground ? *background : *normal;
  }

  // caller_works: the calling thread takes tasks too (the normal pool's calls); otherwise it only waits.
  void run(size_t tasks, unsigned threads, void (*fn)(void*, size_t), void* ctx, bool caller_works) {
    if (tasks == 0) return;
    if (threads == 0) threads = 1;
    if (caller_works && (threads <= 1 || tasks == 1)) {
      for (size_t t = 0; t < tasks; ++t) fn(ctx, t);
      return;
    }
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.tasks = tasks;
    const size_t workers = tasks < threads ? tasks : threads;
    const size_t helpers = caller_works ? workers - 1 : workers;
    job.helpers_wanted = static_cast<unsigned>(helpers);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      grow(helpers);
      queue_.push_back(&job);
    }
    if (helpers == 1) {
      work_available_.notify_one();
    } else {
      work_available_.notify_all();
    }
    if (caller_works) work_on(job);
    // Our own share is done (or none was ours): wait for tasks still running elsewhere, then make sure no pool
    // thread can pick the job up again (it lives on this stack).
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!caller_works) {
        job_done_.wait(lock, [&] { return job.done.load(std::memory_order_acquire) == job.tasks; });
      }
      remove(&job);
      job_done_.wait(lock, [&] { return job.done.load(std::memory_order_acquire) == job.tasks && job.users == 0; });
    }
  }

 private:
  explicit Pool(bool background) : background_(background) {}

  const bool background_;
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
#if defined(__linux__)
    // Named for tools (top -H, /proc/<pid>/task/*/comm) and for the tests that check the priority. prctl rather
    // than pthread_setname_np, which glibc versions at 2.34 (the prebuilds keep to glibc 2.17).
    prctl(PR_SET_NAME, background_ ? "rmsnorm-async" : "rmsnorm-pool", 0, 0, 0);
#endif
    if (background_) lower_priority();
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

void parallel_for(size_t tasks, unsigned threads, void (*fn)(void* ctx, size_t task), void* ctx, PoolKind kind) {
  Pool::instance(kind).run(tasks, threads, fn, ctx, kind == PoolKind::kNormal);
}

unsigned hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

double round_trip_ns() {
  // Measured with a thread of normal priority: the cost of the hand-off itself, not of waiting for a core that
  // other processes hold (which a busy machine would add to the background pool's figure).
  Pool& pool = Pool::instance(PoolKind::kNormal);
  auto nothing = [](void*, size_t) {};
  pool.run(1, 1, nothing, nullptr, false);  // starts the thread
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run(1, 1, nothing, nullptr, false);
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    if (i == 0 || ns < best) best = ns;
  }
  return best;
}

}  // namespace rmsnorm
