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
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/headeronly/version.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
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
// host:port (served by rank 0, which waits for the others), a ProcessGroupGloo with a gloo
// device on the loopback interface when `host` is a loopback address (else on the interfaces
// named by GLOO_SOCKET_IFNAME, else on the address this machine's hostname resolves to),
// registered for CPU and CUDA tensors. Store and collectives time out after timeout_ms.
char *ktorch_pg_gloo(const char *host, uint16_t port, int64_t rank, int64_t size,
                     int64_t timeout_ms, void **out) {
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
    so.isServer = rank == 0;
    so.numWorkers = static_cast<size_t>(size);
    so.waitWorkers = true;
    so.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(h, so);

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
