// ktorch-shim: c10d process groups (torch.distributed's C++ core) for data-parallel training.
//
// Conventions as in shim.cpp: extern "C" functions, tensors as at::Tensor* (a tch Tensor's
// as_ptr()), every C++ exception caught, NULL on success or a malloc'ed message (free with
// free()). A process group is handed to Rust as a heap-allocated
// c10::intrusive_ptr<c10d::ProcessGroup> (an owned reference), freed by ktorch_pg_free.
//
// The collectives go through ProcessGroup's inline methods (allreduce, broadcast, allgather,
// barrier), which call libtorch's dispatcher ops (c10d::allreduce_ ...); those pick the
// group's backend for the tensors' device (gloo for CPU tensors, NCCL for CUDA ones...).
//
// The torch wheel ships c10d's headers but not gloo's, which ProcessGroupGloo.hpp includes:
// src/gloo_decl/ stands in for them (see gloo_decl/gloo/ktorch_decl.h). This file compiles
// apart from shim.cpp because ProcessGroup.hpp pulls in <ATen/ATen.h>.

#define USE_C10D_GLOO 1

#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/headeronly/version.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

// ProcessGroupGloo is created here with make_intrusive, so its size comes from the header
// parsed with the stand-in gloo declarations. They leave gloo's types incomplete, so the size
// cannot depend on them; for torch 2.11 it is also checked against the 0x1e8 bytes that
// libtorch_cpu's own ProcessGroupGloo::split allocates (objdump of that function).
// Another libtorch is not checked: there, making a gloo group from here is refused.
#if TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 11
static_assert(sizeof(c10d::ProcessGroupGloo) == 0x1e8,
              "sizeof(ProcessGroupGloo) differs from libtorch 2.11's");
#define KTORCH_GLOO_SIZE_CHECKED 1
#endif

namespace {

using Pg = c10::intrusive_ptr<c10d::ProcessGroup>;

template <typename F> char *guard(F f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error &e) {
    return strdup(e.what_without_backtrace());
  } catch (const std::exception &e) {
    return strdup(e.what());
  } catch (...) {
    return strdup("unknown C++ exception");
  }
}

const Pg &group(const void *pg) {
  TORCH_CHECK(pg != nullptr, "process group: null handle");
  const Pg &p = *static_cast<const Pg *>(pg);
  TORCH_CHECK(p, "process group: empty handle");
  return p;
}

// Handles to the n tensors at p[0..n), each defined, dense and contiguous.
std::vector<at::Tensor> checked(const at::Tensor *const *p, size_t n, const char *what) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    TORCH_CHECK(p[i] != nullptr && p[i]->defined(), what, "[", i, "]: undefined tensor");
    const at::Tensor &t = *p[i];
    TORCH_CHECK(t.layout() == at::kStrided, what, "[", i, "]: not a dense tensor");
    TORCH_CHECK(t.is_contiguous(), what, "[", i, "]: not a contiguous tensor");
    v.push_back(t);
  }
  return v;
}

// Tensors sharing a dtype and device, reduced (or broadcast) together: alone, the tensor
// itself in place; several, one flat buffer (their elements one after the other), copied back
// after the collective.
struct Bucket {
  std::vector<at::Tensor> members;
  int64_t bytes = 0;
  at::Tensor buffer;
};

// Buckets per (dtype, device) in the order first met, each at most kBucketCap bytes (a tensor
// over the cap gets a bucket of its own). Every rank gives tensors of the same shapes and dtypes in
// the same order, so every rank makes the same buckets.
constexpr int64_t kBucketCap = int64_t{32} << 20;

std::vector<Bucket> buckets(const std::vector<at::Tensor> &ts) {
  std::vector<Bucket> out;
  std::vector<size_t> open; // per (dtype, device) met, the bucket being filled
  for (const auto &t : ts) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    size_t k = 0;
    while (k < open.size() &&
           !(out[open[k]].members[0].scalar_type() == t.scalar_type() &&
             out[open[k]].members[0].device() == t.device())) {
      ++k;
    }
    if (k < open.size() && out[open[k]].bytes + bytes <= kBucketCap) {
      out[open[k]].members.push_back(t);
      out[open[k]].bytes += bytes;
      continue;
    }
    out.push_back(Bucket{{t}, bytes, at::Tensor()});
    if (k < open.size()) {
      open[k] = out.size() - 1;
    } else {
      open.push_back(out.size() - 1);
    }
  }
  for (auto &b : out) {
    if (b.members.size() == 1) {
      b.buffer = b.members[0];
    } else {
      std::vector<at::Tensor> flat;
      flat.reserve(b.members.size());
      for (const auto &t : b.members) {
        flat.push_back(t.reshape({-1}));
      }
      b.buffer = at::cat(flat);
    }
  }
  return out;
}

// Waits for every work (all of them, even after one fails, so that none still writes into a
// buffer after we return), then raises the first failure's message after `what`.
void wait_all(std::vector<c10::intrusive_ptr<c10d::Work>> &works, const char *what) {
  std::string first;
  bool failed = false;
  for (auto &w : works) {
    try {
      w->wait();
    } catch (const c10::Error &e) {
      if (!failed) {
        first = e.what_without_backtrace();
      }
      failed = true;
    } catch (const std::exception &e) {
      if (!failed) {
        first = e.what();
      }
      failed = true;
    } catch (...) {
      if (!failed) {
        first = "unknown C++ exception";
      }
      failed = true;
    }
  }
  TORCH_CHECK(!failed, what, ": ", first);
}

// Runs `launch` on each bucket's buffer (a one-tensor list) and copies the results back into
// the members of several-tensor buckets, outside autograd (as torch.distributed, which writes
// into parameters that require grad, e.g. DDP's broadcast of the initial parameters).
template <typename L>
void bucketed(const std::vector<at::Tensor> &ts, const char *what, L launch) {
  at::NoGradGuard no_grad;
  auto bs = buckets(ts);
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  works.reserve(bs.size());
  try {
    for (auto &b : bs) {
      if (b.buffer.numel() == 0) {
        continue; // the same on every rank: nothing to send
      }
      std::vector<at::Tensor> one{b.buffer};
      works.push_back(launch(one));
    }
  } catch (...) {
    // a launch refused: let those launched finish before the error goes back
    for (auto &w : works) {
      try {
        w->wait();
      } catch (...) {
      }
    }
    throw;
  }
  wait_all(works, what);
  for (auto &b : bs) {
    if (b.members.size() < 2) {
      continue;
    }
    int64_t off = 0;
    for (auto &t : b.members) {
      const int64_t n = t.numel();
      t.copy_(b.buffer.narrow(0, off, n).view(t.sizes()));
      off += n;
    }
  }
}


// ---- gradient reducer: one allreduce per bucket of gradients, launched during backward ----
//
// What DDP's reducer does for a training step, for a process group and the parameters that
// are trained: gradients are grouped into buckets (per dtype and device, in reverse order of
// the parameters, as backward produces them: the first bucket at most `first_cap` bytes so
// that communication starts early, the others at most `cap`), a hook on each parameter's
// gradient accumulator marks its gradient ready, and a bucket whose gradients are all ready
// is launched (copied into one flat buffer, allreduced by sum) while backward goes on.
// Buckets are launched strictly in order, so every rank issues the same collectives in the
// same order whatever order its gradients come in. The last bucket waits for `finish`, which
// launches the buckets left (a parameter without a gradient adds zeros), appends to the last
// one this rank's loss and, per parameter, a flag saying this rank had a gradient, waits for
// every collective and copies the sums back into the gradients. A parameter no rank had a
// gradient for is left without one. Unlike c10d's Reducer it sums (the caller weights the
// losses) and a rank need not run backward at all (a rank without rows calls begin, then
// finish).
struct GradBucket {
  std::vector<size_t> members; // indices of the parameters, in order
  at::Tensor buffer;           // the flat buffer of the backward under way
  bool in_place = false;       // buffer is the member's own gradient (one contiguous member)
  c10::intrusive_ptr<c10d::Work> work;
};

struct Reducer;

// Marks parameter i's gradient ready; a hook that outlives its reducer does nothing.
struct ReadyHook : torch::autograd::FunctionPostHook {
  ReadyHook(std::weak_ptr<Reducer> r, size_t i) : r_(std::move(r)), i_(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list &outputs,
                                            const torch::autograd::variable_list &) override;
  std::weak_ptr<Reducer> r_;
  size_t i_;
};

struct Reducer {
  Pg pg;
  std::vector<at::Tensor> params;
  std::vector<GradBucket> buckets;
  std::vector<size_t> bucket_of;
  at::Tensor place; // device of the loss and flags when no bucket holds them
  std::vector<std::shared_ptr<torch::autograd::Node>> accs;
  std::vector<uintptr_t> keys;

  std::mutex mu;
  bool armed = false;
  std::vector<int64_t> pending; // per bucket, members not yet ready
  std::vector<char> ready, had;
  size_t next = 0;   // the next bucket to launch
  size_t early = 0;  // buckets launched during backward
  std::string error; // the first launch that failed

  // Launches bucket b: this rank's gradients (zeros where none) and, after them, `extra`.
  void launch(size_t b, const at::Tensor &extra) {
    at::NoGradGuard no_grad;
    auto &k = buckets[b];
    k.work.reset();
    std::vector<at::Tensor> flat;
    flat.reserve(k.members.size() + 1);
    for (size_t i : k.members) {
      at::Tensor &g = params[i].mutable_grad();
      had[i] = g.defined();
      if (!g.defined()) {
        g = at::zeros_like(params[i], at::MemoryFormat::Contiguous);
      } else if (g.layout() != at::kStrided) {
        g = g.to_dense();
      }
      flat.push_back(g.reshape({-1}));
    }
    if (extra.defined()) {
      flat.push_back(extra);
    }
    k.in_place = flat.size() == 1 && k.members.size() == 1 &&
                 params[k.members[0]].grad().is_contiguous();
    k.buffer = k.in_place ? flat[0] : at::cat(flat);
    if (k.buffer.numel() == 0) {
      return; // the same on every rank: nothing to send
    }
    std::vector<at::Tensor> one{k.buffer};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    k.work = pg->allreduce(one, o);
  }

  // Launches, in order, every bucket before the last whose gradients are all ready (under mu).
  void launch_ready() {
    while (error.empty() && next + 1 < buckets.size() && pending[next] == 0) {
      try {
        launch(next, at::Tensor());
      } catch (const c10::Error &e) {
        error = e.what_without_backtrace();
      } catch (const std::exception &e) {
        error = e.what();
      } catch (...) {
        error = "unknown C++ exception";
      }
      ++next;
      ++early;
    }
  }

  void mark(size_t i) {
    std::lock_guard<std::mutex> g(mu);
    if (!armed || i >= ready.size() || ready[i]) {
      return;
    }
    ready[i] = 1;
    --pending[bucket_of[i]];
    launch_ready();
  }

  ~Reducer() {
    for (size_t i = 0; i < accs.size(); ++i) {
      if (accs[i]) {
        try {
          accs[i]->del_post_hook(keys[i]);
        } catch (...) {
        }
      }
    }
  }
};

torch::autograd::variable_list ReadyHook::operator()(const torch::autograd::variable_list &outputs,
                                                     const torch::autograd::variable_list &) {
  if (auto r = r_.lock()) {
    r->mark(i_);
  }
  return outputs;
}

using ReducerPtr = std::shared_ptr<Reducer>;

ReducerPtr &reducer(void *r) {
  TORCH_CHECK(r != nullptr, "gradient reducer: null handle");
  return *static_cast<ReducerPtr *>(r);
}

bool extras_fit(const at::Tensor &t) {
  const auto k = t.scalar_type();
  return k == at::kFloat || k == at::kDouble;
}

bool loopback(const std::string &host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

} // namespace

extern "C" {

// The group registered under `name` (torch.distributed's group_name) in this process, as a new
// handle in *out.
char *ktorch_pg_resolve(const char *name, void **out) {
  return guard([&] {
    TORCH_CHECK(name != nullptr && out != nullptr, "resolve: null argument");
    *out = nullptr;
    Pg p = c10d::resolve_process_group(name);
    TORCH_CHECK(p, "no process group registered under the name ", name);
    *out = new Pg(std::move(p));
  });
}

// A new gloo group as torch.distributed.init_process_group("gloo") makes it: a TCPStore at
// host:port (served by rank 0, which waits for the others; with `agent_store`, served by
// torchrun's agent, every rank a client, our keys under the prefix "ktorch"), a
// ProcessGroupGloo with a gloo
// device on the loopback interface when `host` is a loopback address (else on the interfaces
// named by GLOO_SOCKET_IFNAME, else on the address this machine's hostname resolves to),
// registered for CPU and CUDA tensors. Store and collectives time out after timeout_ms.
char *ktorch_pg_gloo(const char *host, uint16_t port, int64_t rank, int64_t size,
                     int64_t timeout_ms, bool agent_store, void **out) {
  return guard([&] {
#ifndef KTORCH_GLOO_SIZE_CHECKED
    TORCH_CHECK(false, "a gloo group made from Rust needs libtorch 2.11 (its layout is checked "
                       "for that version only): create the group with torch.distributed instead");
#endif
    TORCH_CHECK(host != nullptr && out != nullptr, "gloo: null argument");
    *out = nullptr;
    TORCH_CHECK(size >= 1 && size <= INT32_MAX, "gloo: invalid group size ", size);
    TORCH_CHECK(rank >= 0 && rank < size, "gloo: rank ", rank, " out of range for size ", size);
    TORCH_CHECK(timeout_ms > 0, "gloo: the timeout must be positive");
    const std::chrono::milliseconds timeout(timeout_ms);
    const std::string h(host);

    c10d::TCPStoreOptions so;
    so.port = port;
    so.isServer = rank == 0 && !agent_store;
    so.numWorkers = static_cast<size_t>(size);
    so.waitWorkers = !agent_store;
    so.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(h, so);
    if (agent_store) {
      store = c10::make_intrusive<c10d::PrefixStore>("ktorch", store);
    }

    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char *ifnames = std::getenv("GLOO_SOCKET_IFNAME");
    if (loopback(h)) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else if (ifnames != nullptr && *ifnames != '\0') {
      std::string s(ifnames);
      size_t start = 0;
      while (start <= s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string::npos) {
          end = s.size();
        }
        if (end > start) {
          opts->devices.push_back(
              c10d::ProcessGroupGloo::createDeviceForInterface(s.substr(start, end - start)));
        }
        start = end + 1;
      }
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }

    const int r = static_cast<int>(rank), n = static_cast<int>(size);
    auto pg = c10::make_intrusive<c10d::ProcessGroup>(store, r, n);
    pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, r, n, opts);
    gloo->setSequenceNumberForGroup();
    c10::intrusive_ptr<c10d::Backend> backend = gloo;
    pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, backend);
    pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::GLOO, backend);
    *out = new Pg(std::move(pg));
  });
}

// Drops the handle's reference (the group is destroyed with its last reference).
void ktorch_pg_free(void *pg) {
  try {
    delete static_cast<Pg *>(pg);
  } catch (...) {
  }
}

// Whether two handles hold the same group (one c10d::ProcessGroup object).
char *ktorch_pg_same(const void *a, const void *b, bool *same) {
  return guard([&] {
    TORCH_CHECK(same != nullptr, "same: null argument");
    *same = group(a).get() == group(b).get();
  });
}

// Rank, size and the default backend's name (a malloc'ed string in *backend).
char *ktorch_pg_info(const void *pg, int64_t *rank, int64_t *size, char **backend) {
  return guard([&] {
    TORCH_CHECK(rank != nullptr && size != nullptr && backend != nullptr, "info: null argument");
    *backend = nullptr;
    const Pg &p = group(pg);
    *rank = p->getRank();
    *size = p->getSize();
    const std::string name = p->getBackendName();
    *backend = strdup(name.c_str());
    TORCH_CHECK(*backend != nullptr, "info: out of memory");
  });
}

// Registers the group under `name` in this process's c10d registry (what resolve reads); for
// tests.
char *ktorch_pg_register(const void *pg, const char *name) {
  return guard([&] {
    TORCH_CHECK(name != nullptr, "register: null name");
    c10d::register_process_group(name, group(pg));
  });
}

char *ktorch_pg_unregister(const char *name) {
  return guard([&] {
    TORCH_CHECK(name != nullptr, "unregister: null name");
    c10d::unregister_process_group(name);
  });
}

// In-place allreduce of n tensors (op: 0 sum, 1 max, 2 min), waiting for completion. Tensors
// are bucketed per dtype and device (see `buckets`): one collective per bucket, all launched
// before the first wait.
char *ktorch_pg_allreduce_(const void *pg, const at::Tensor *const *tensors, size_t n, int op) {
  return guard([&] {
    const Pg &p = group(pg);
    TORCH_CHECK(n == 0 || tensors != nullptr, "allreduce: null tensor list");
    c10d::AllreduceOptions o;
    switch (op) {
    case 0:
      o.reduceOp = c10d::ReduceOp::SUM;
      break;
    case 1:
      o.reduceOp = c10d::ReduceOp::MAX;
      break;
    case 2:
      o.reduceOp = c10d::ReduceOp::MIN;
      break;
    default:
      TORCH_CHECK(false, "allreduce: unknown reduction ", op);
    }
    auto ts = checked(tensors, n, "allreduce: tensors");
    bucketed(ts, "allreduce", [&](std::vector<at::Tensor> &one) { return p->allreduce(one, o); });
  });
}

// In-place broadcast of n tensors from `root`, bucketed as allreduce.
char *ktorch_pg_broadcast_(const void *pg, const at::Tensor *const *tensors, size_t n,
                           int64_t root) {
  return guard([&] {
    const Pg &p = group(pg);
    TORCH_CHECK(n == 0 || tensors != nullptr, "broadcast: null tensor list");
    TORCH_CHECK(root >= 0 && root < p->getSize(), "broadcast: root ", root,
                " out of range for a group of ", p->getSize());
    auto ts = checked(tensors, n, "broadcast: tensors");
    c10d::BroadcastOptions o;
    o.rootRank = root;
    bucketed(ts, "broadcast", [&](std::vector<at::Tensor> &one) { return p->broadcast(one, o); });
  });
}

// Every rank's `tensor`, in rank order, as `n` (the group's size) new handles in out[0..n)
// (the caller owns them; none are left on error).
char *ktorch_pg_allgather(const void *pg, const at::Tensor *tensor, at::Tensor **out, size_t n) {
  for (size_t i = 0; i < n && out != nullptr; ++i) {
    out[i] = nullptr;
  }
  char *msg = guard([&] {
    const Pg &p = group(pg);
    TORCH_CHECK(out != nullptr, "allgather: null output");
    TORCH_CHECK(static_cast<int64_t>(n) == p->getSize(), "allgather: room for ", n,
                " tensors, the group has ", p->getSize());
    auto in = checked(&tensor, 1, "allgather: tensor");
    std::vector<std::vector<at::Tensor>> outs(1);
    outs[0].reserve(n);
    for (size_t i = 0; i < n; ++i) {
      outs[0].push_back(at::empty_like(in[0], at::MemoryFormat::Contiguous));
    }
    std::vector<c10::intrusive_ptr<c10d::Work>> works{p->allgather(outs, in)};
    wait_all(works, "allgather");
    for (size_t i = 0; i < n; ++i) {
      out[i] = new at::Tensor(std::move(outs[0][i]));
    }
  });
  if (msg != nullptr) {
    for (size_t i = 0; i < n && out != nullptr; ++i) {
      delete out[i];
      out[i] = nullptr;
    }
  }
  return msg;
}

// A gradient reducer over the n parameters at params[0..n) (leaves that require grad, each
// once, the same shapes and dtypes in the same order on every rank), with hooks on their
// gradient accumulators, as a new handle in *out. `place`: a tensor on the device where the
// loss and flags go when no bucket holds them. Buckets as described above (first_cap, cap in
// bytes, both positive).
char *ktorch_gr_new(const void *pg, const at::Tensor *const *params, size_t n,
                    const at::Tensor *place, int64_t first_cap, int64_t cap, void **out) {
  return guard([&] {
    TORCH_CHECK(out != nullptr && place != nullptr && place->defined(),
                "gradient reducer: null argument");
    *out = nullptr;
    TORCH_CHECK(n == 0 || params != nullptr, "gradient reducer: null parameter list");
    TORCH_CHECK(first_cap > 0 && cap > 0, "gradient reducer: bucket caps must be positive");
    auto r = std::make_shared<Reducer>();
    r->pg = group(pg);
    r->place = *place;
    for (size_t i = 0; i < n; ++i) {
      TORCH_CHECK(params[i] != nullptr && params[i]->defined(), "gradient reducer: parameter ",
                  i, " undefined");
      TORCH_CHECK(params[i]->layout() == at::kStrided, "gradient reducer: parameter ", i,
                  " is not dense");
      r->params.push_back(*params[i]);
    }
    // buckets over the parameters in reverse order, per (dtype, device)
    r->bucket_of.assign(n, 0);
    std::vector<int64_t> bytes;
    std::vector<size_t> open; // per (dtype, device) met, the bucket being filled
    for (size_t j = n; j-- > 0;) {
      const at::Tensor &t = r->params[j];
      const int64_t b = t.numel() * static_cast<int64_t>(t.element_size());
      size_t k = 0;
      while (k < open.size()) {
        const at::Tensor &o = r->params[r->buckets[open[k]].members[0]];
        if (o.scalar_type() == t.scalar_type() && o.device() == t.device()) {
          break;
        }
        ++k;
      }
      const int64_t limit = k < open.size() && open[k] == 0 ? first_cap : cap;
      if (k < open.size() && bytes[open[k]] + b <= limit) {
        r->buckets[open[k]].members.push_back(j);
        bytes[open[k]] += b;
        r->bucket_of[j] = open[k];
        continue;
      }
      r->buckets.push_back(GradBucket{{j}, at::Tensor(), false, {}});
      bytes.push_back(b);
      r->bucket_of[j] = r->buckets.size() - 1;
      if (k < open.size()) {
        open[k] = r->buckets.size() - 1;
      } else {
        open.push_back(r->buckets.size() - 1);
      }
    }
    // hooks: a parameter without an accumulator (not a leaf) is ready at finish only
    r->accs.assign(n, nullptr);
    r->keys.assign(n, 0);
    const std::weak_ptr<Reducer> weak = r;
    for (size_t i = 0; i < n; ++i) {
      std::shared_ptr<torch::autograd::Node> acc;
      try {
        acc = torch::autograd::impl::grad_accumulator(r->params[i]);
      } catch (...) {
        acc = nullptr;
      }
      if (acc) {
        r->keys[i] = acc->add_post_hook(std::make_unique<ReadyHook>(weak, i));
        r->accs[i] = std::move(acc);
      }
    }
    *out = new ReducerPtr(std::move(r));
  });
}

// Drops the reducer: its hooks are removed.
void ktorch_gr_free(void *r) {
  try {
    delete static_cast<ReducerPtr *>(r);
  } catch (...) {
  }
}

// The number of buckets, and of those launched during the last backward (before finish).
char *ktorch_gr_info(void *r, int64_t *buckets, int64_t *early) {
  return guard([&] {
    TORCH_CHECK(buckets != nullptr && early != nullptr, "gradient reducer: null argument");
    auto &p = reducer(r);
    std::lock_guard<std::mutex> g(p->mu);
    *buckets = static_cast<int64_t>(p->buckets.size());
    *early = static_cast<int64_t>(p->early);
  });
}

// Before a backward: gradients are reduced as they become ready.
char *ktorch_gr_begin(void *r) {
  return guard([&] {
    auto &p = reducer(r);
    std::lock_guard<std::mutex> g(p->mu);
    const size_t nb = p->buckets.size(), n = p->params.size();
    p->pending.assign(nb, 0);
    for (size_t i = 0; i < n; ++i) {
      ++p->pending[p->bucket_of[i]];
    }
    for (auto &b : p->buckets) {
      b.work.reset();
      b.buffer = at::Tensor();
    }
    p->ready.assign(n, 0);
    p->had.assign(n, 1);
    p->next = 0;
    p->early = 0;
    p->error.clear();
    p->armed = true;
  });
}

// After the backward (or in place of it, for a rank without rows): launches the buckets left,
// the last with this rank's loss (`loss`, a one-element tensor; NULL for none: zero) and
// gradient flags, waits for every collective, copies the sums into the gradients, releases
// the gradients of parameters no rank had one for, and gives the summed loss in *out (a new
// float64 scalar tensor on the loss's device).
char *ktorch_gr_finish(void *r, const at::Tensor *loss, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(out != nullptr, "gradient reducer: null output");
    *out = nullptr;
    auto &p = reducer(r);
    std::lock_guard<std::mutex> g(p->mu);
    TORCH_CHECK(p->armed, "gradient reducer: finish without begin");
    p->armed = false;
    at::NoGradGuard no_grad;
    const size_t nb = p->buckets.size(), n = p->params.size();
    std::string first = p->error;
    auto note = [&](const char *what) {
      if (first.empty()) {
        first = what;
      }
    };
    // every bucket before the last
    for (; first.empty() && p->next + 1 < nb; ++p->next) {
      try {
        p->launch(p->next, at::Tensor());
      } catch (const c10::Error &e) {
        note(e.what_without_backtrace());
      } catch (const std::exception &e) {
        note(e.what());
      } catch (...) {
        note("unknown C++ exception");
      }
    }
    // the last, with the loss and flags when its dtype holds them; else they go alone
    const bool last_holds = nb > 0 && extras_fit(p->params[p->buckets[nb - 1].members[0]]);
    const at::Tensor &like = last_holds ? p->params[p->buckets[nb - 1].members[0]] : p->place;
    const auto opts = at::TensorOptions()
                          .dtype(last_holds ? like.scalar_type() : at::kDouble)
                          .device(like.device());
    at::Tensor extra, alone;
    c10::intrusive_ptr<c10d::Work> alone_work;
    if (first.empty()) {
      try {
        if (nb > 0) {
          // the flags are known once every bucket is filled: fill the last one's first
          for (size_t i : p->buckets[nb - 1].members) {
            p->had[i] = p->params[i].grad().defined();
          }
        }
        // made on the device (no copy from the host, which would wait for the device)
        at::Tensor flags = at::ones({static_cast<int64_t>(n)}, opts);
        for (size_t i = 0; i < n; ++i) {
          if (!p->had[i]) {
            flags.narrow(0, static_cast<int64_t>(i), 1).fill_(0);
          }
        }
        at::Tensor l = loss != nullptr && loss->defined()
                           ? loss->detach().reshape({1}).to(opts)
                           : at::zeros({1}, opts);
        extra = at::cat({l, flags});
        if (nb > 0 && last_holds) {
          p->launch(nb - 1, extra);
          p->next = nb;
        } else {
          if (nb > 0) {
            p->launch(nb - 1, at::Tensor());
            p->next = nb;
          }
          alone = extra;
          std::vector<at::Tensor> one{alone};
          c10d::AllreduceOptions o;
          o.reduceOp = c10d::ReduceOp::SUM;
          alone_work = p->pg->allreduce(one, o);
        }
      } catch (const c10::Error &e) {
        note(e.what_without_backtrace());
      } catch (const std::exception &e) {
        note(e.what());
      } catch (...) {
        note("unknown C++ exception");
      }
    }
    // wait for all that was launched, even after a failure
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto &b : p->buckets) {
      if (b.work) {
        works.push_back(b.work);
      }
    }
    if (alone_work) {
      works.push_back(alone_work);
    }
    std::string waited;
    try {
      wait_all(works, "allreduce");
    } catch (const c10::Error &e) {
      waited = e.what_without_backtrace();
    } catch (...) {
      waited = "allreduce: unknown C++ exception";
    }
    TORCH_CHECK(first.empty(), "allreduce: ", first);
    TORCH_CHECK(waited.empty(), waited);
    // the sums back into the gradients
    for (auto &b : p->buckets) {
      if (b.in_place || !b.buffer.defined()) {
        continue;
      }
      int64_t off = 0;
      for (size_t i : b.members) {
        at::Tensor &gr = p->params[i].mutable_grad();
        const int64_t k = gr.numel();
        gr.copy_(b.buffer.narrow(0, off, k).view(gr.sizes()));
        off += k;
      }
    }
    at::Tensor sums = alone.defined() ? alone : p->buckets[nb - 1].buffer.narrow(
                                                    0, p->buckets[nb - 1].buffer.numel() - 1 -
                                                           static_cast<int64_t>(n),
                                                    1 + static_cast<int64_t>(n));
    // a parameter this rank had no gradient for: released if no rank had one
    bool lacking = false;
    for (size_t i = 0; i < n; ++i) {
      lacking = lacking || !p->had[i];
    }
    if (lacking) {
      const at::Tensor f = sums.narrow(0, 1, static_cast<int64_t>(n)).to(at::kCPU, at::kDouble);
      const double *fp = f.data_ptr<double>();
      for (size_t i = 0; i < n; ++i) {
        if (fp[i] == 0.0) {
          p->params[i].mutable_grad().reset();
        }
      }
    }
    for (auto &b : p->buckets) {
      b.work.reset();
      b.buffer = at::Tensor();
    }
    *out = new at::Tensor(sums.narrow(0, 0, 1).reshape({}).to(at::kDouble, false, true));
  });
}

// What ProcessGroup::barrier does, with the tensor it sends made per call: the header's inline
// barrier keeps it in a function-local static that concurrent calls would race on.
char *ktorch_pg_barrier(const void *pg) {
  return guard([&] {
    const Pg &p = group(pg);
    using Type = c10d::ProcessGroup::BackendType;
    const auto type = p->getBackendType();
    const auto dev = type == Type::NCCL   ? at::DeviceType::CUDA
                     : type == Type::XCCL ? at::DeviceType::XPU
                                          : at::DeviceType::CPU;
    at::Tensor tensor = at::empty({1}, at::TensorOptions().device(dev).dtype(at::kByte));
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("c10d::barrier", "")
                         .typed<c10::intrusive_ptr<c10d::Work>(
                             at::Tensor, const c10::intrusive_ptr<c10d::ProcessGroup> &,
                             const std::vector<int64_t> &, bool, int64_t)>();
    const c10d::BarrierOptions o;
    std::vector<c10::intrusive_ptr<c10d::Work>> works{
        op.call(tensor, p, o.device_ids, o.asyncOp, o.timeout.count())};
    wait_all(works, "barrier");
  });
}

} // extern "C"
