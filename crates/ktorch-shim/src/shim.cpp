// ktorch-shim: libtorch calls that tch does not bind.
//
// Every function is extern "C", takes tensors as arrays of at::Tensor* (what a tch Tensor's
// as_ptr() points to: torch-sys's C wrapper has `typedef torch::Tensor *tensor;`), catches
// every C++ exception and returns NULL on success or a malloc'ed message (free with free()).
// Only the ATen op headers used are included, to keep compile time low. Plain C++17.

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_addcdiv.h>
#include <ATen/ops/_foreach_addcmul.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_lerp.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_foreach_sqrt.h>
#include <ATen/ops/_fused_adagrad.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/_fused_sgd.h>
#include <ATen/ops/norm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

namespace {

// Handles to the n tensors at p[0..n) (reference counts, not data, are copied).
std::vector<at::Tensor> list(const at::Tensor *const *p, size_t n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    v.push_back(*p[i]);
  }
  return v;
}

// Checks what libtorch's CPU kernels take for granted (they read numel() elements from
// data_ptr() of each tensor): every list as long as params (or, when `optional`, empty), every
// tensor defined, contiguous and of its parameter's sizes, dtype and device.
void check_like(const std::vector<at::Tensor> &params, const std::vector<at::Tensor> &ts,
                const char *name, bool optional = false) {
  TORCH_CHECK(ts.size() == params.size() || (optional && ts.empty()), name, ": expected ",
              params.size(), " tensors, given ", ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const at::Tensor &p = params[i], &t = ts[i];
    TORCH_CHECK(t.defined() && p.defined(), name, "[", i, "]: undefined tensor");
    TORCH_CHECK(t.sizes() == p.sizes(), name, "[", i, "]: sizes ", t.sizes(),
                " differ from the parameter's ", p.sizes());
    TORCH_CHECK(t.scalar_type() == p.scalar_type() && t.device() == p.device(), name, "[", i,
                "]: dtype or device differs from the parameter's");
    TORCH_CHECK(t.layout() == at::kStrided && t.is_contiguous() && p.is_contiguous(), name, "[",
                i, "]: not a dense contiguous tensor");
  }
}

// Step counts: one single-element tensor per parameter.
void check_steps(const std::vector<at::Tensor> &params, const std::vector<at::Tensor> &steps) {
  TORCH_CHECK(steps.size() == params.size(), "steps: expected ", params.size(),
              " tensors, given ", steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    TORCH_CHECK(steps[i].defined() && steps[i].numel() == 1, "steps[", i,
                "]: not a one-element tensor");
  }
}

// The n doubles at p[0..n) as scalars.
std::vector<at::Scalar> scalars(const double *p, size_t n) {
  std::vector<at::Scalar> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    v.emplace_back(p[i]);
  }
  return v;
}

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

} // namespace

extern "C" {

// p.mutable_grad().reset() for each tensor: gradients set to None, as torch.optim's
// zero_grad(set_to_none=True) does, with no op run (libtorch's Optimizer::zero_grad
// detaches each gradient first)
char *ktorch_release_grads(const at::Tensor *const *tensors, size_t n) {
  return guard([&] {
    for (size_t i = 0; i < n; ++i) {
      TORCH_CHECK(tensors[i] != nullptr && tensors[i]->defined(), "tensors[", i, "]: undefined");
      const_cast<at::Tensor *>(tensors[i])->mutable_grad().reset();
    }
  });
}

// Autocast for CUDA (cuda true) or the CPU, as torch.autocast's __enter__ (on) and __exit__
// (off) do: entering writes the flag and dtype in force, turns autocast on in `dtype` (a
// c10::ScalarType code) and counts the nesting; leaving puts back the flag and dtype given
// (those entering wrote) and, leaving the outermost region, clears the cache of cast weights.
char *ktorch_autocast(bool cuda, bool on, int dtype, bool *was_on, int *was_dtype) {
  return guard([&] {
    const auto dev = cuda ? at::kCUDA : at::kCPU;
    TORCH_CHECK(dtype >= 0 && dtype < static_cast<int>(at::ScalarType::NumOptions),
                "autocast: invalid dtype code ", dtype);
    if (on) {
      *was_on = at::autocast::is_autocast_enabled(dev);
      *was_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dev));
      at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(dtype));
      at::autocast::set_autocast_enabled(dev, true);
      at::autocast::increment_nesting();
    } else {
      if (at::autocast::decrement_nesting() == 0) {
        at::autocast::clear_cache();
      }
      at::autocast::set_autocast_enabled(dev, *was_on);
      at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(dtype));
    }
  });
}

// Where each of n parameters goes in a fused optimizer step, in one call: where[i] is -1 for
// a parameter without gradient, -2 for one the fused kernels cannot take (a dtype other than
// float32/float64/float16/bfloat16, a device without the kernels (CUDA when cpu_only), a
// sparse parameter or gradient, a gradient of another dtype, device or size, a non-contiguous
// parameter or gradient), else the index of its (device, dtype) among those met first to last.
// grads[i] is a new handle to the gradient (the caller frees it) or NULL without one. On error
// no handle is left allocated.
char *ktorch_fused_plan(const at::Tensor *const *params, size_t n, bool cpu_only,
                        at::Tensor **grads, int64_t *where) {
  for (size_t i = 0; i < n; ++i) {
    grads[i] = nullptr;
  }
  char *msg = guard([&] {
    std::vector<std::pair<at::Device, at::ScalarType>> keys;
    for (size_t i = 0; i < n; ++i) {
      TORCH_CHECK(params[i] != nullptr && params[i]->defined(), "params[", i, "]: undefined");
      const at::Tensor &p = *params[i];
      const at::Tensor &g = p.grad();
      if (!g.defined()) {
        where[i] = -1;
        continue;
      }
      grads[i] = new at::Tensor(g);
      const auto st = p.scalar_type();
      const auto dev = p.device();
      const bool ok =
          (st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16) &&
          (dev.is_cpu() || (dev.is_cuda() && !cpu_only)) && p.layout() == at::kStrided &&
          g.layout() == at::kStrided && g.scalar_type() == st && g.device() == dev &&
          g.sizes() == p.sizes() && p.is_contiguous() && g.is_contiguous();
      if (!ok) {
        where[i] = -2;
        continue;
      }
      const auto key = std::make_pair(dev, st);
      size_t k = 0;
      while (k < keys.size() && keys[k] != key) {
        ++k;
      }
      if (k == keys.size()) {
        keys.push_back(key);
      }
      where[i] = static_cast<int64_t>(k);
    }
  });
  if (msg != nullptr) {
    for (size_t i = 0; i < n; ++i) {
      delete grads[i];
      grads[i] = nullptr;
    }
  }
  return msg;
}

// The state of libtorch's default CPU generator (randn, randperm, dropout on the CPU) as a new
// byte tensor in *out (the caller owns it), or, with `set`, that generator set from *in.
char *ktorch_cpu_rng_state(const at::Tensor *in, at::Tensor **out) {
  return guard([&] {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    if (in != nullptr) {
      TORCH_CHECK(in->defined() && in->scalar_type() == at::kByte && in->device().is_cpu(),
                  "generator state: expected a CPU byte tensor");
      gen.set_state(*in);
    } else {
      TORCH_CHECK(out != nullptr, "out: null");
      *out = new at::Tensor(gen.get_state());
    }
  });
}

// at::_foreach_add_(tensors, scalar); nothing for an empty list
char *ktorch_foreach_add_scalar_(const at::Tensor *const *tensors, size_t n, double scalar) {
  return guard([&] {
    auto t = list(tensors, n);
    if (!t.empty()) {
      at::_foreach_add_(t, at::Scalar(scalar));
    }
  });
}

// at::_fused_sgd_ (no grad_scale, no found_inf); nbufs is 0 without momentum.
// Every fused call checks its lists first (check_like) and does nothing for no parameters.
char *ktorch_fused_sgd_(const at::Tensor *const *params, size_t nparams, const at::Tensor *const *grads,
                        size_t ngrads, const at::Tensor *const *bufs, size_t nbufs, double weight_decay,
                        double momentum, double lr, double dampening, bool nesterov,
                        bool maximize, bool is_first_step) {
  return guard([&] {
    auto p = list(params, nparams);
    auto g = list(grads, ngrads);
    auto b = list(bufs, nbufs);
    check_like(p, p, "params");
    check_like(p, g, "grads");
    check_like(p, b, "momentum buffers", true);
    TORCH_CHECK(momentum == 0 || b.size() == p.size(), "momentum buffers: none given with a momentum");
    if (p.empty()) {
      return;
    }
    at::_fused_sgd_(p, g, b, weight_decay, momentum, lr, dampening, nesterov, maximize,
                    is_first_step);
  });
}

// at::_fused_adam_ or, with decoupled, at::_fused_adamw_ (no grad_scale, no found_inf);
// nmax is 0 without amsgrad
char *ktorch_fused_adam_(const at::Tensor *const *params, size_t nparams, const at::Tensor *const *grads,
                         size_t ngrads, const at::Tensor *const *exp_avgs, size_t navgs,
                         const at::Tensor *const *exp_avg_sqs, size_t nsqs,
                         const at::Tensor *const *max_exp_avg_sqs, size_t nmax,
                         const at::Tensor *const *steps, size_t nsteps, double lr, double beta1,
                         double beta2, double weight_decay, double eps, bool amsgrad,
                         bool maximize, bool decoupled) {
  return guard([&] {
    auto p = list(params, nparams);
    auto g = list(grads, ngrads);
    auto m = list(exp_avgs, navgs);
    auto v = list(exp_avg_sqs, nsqs);
    auto vmax = list(max_exp_avg_sqs, nmax);
    auto s = list(steps, nsteps);
    check_like(p, p, "params");
    check_like(p, g, "grads");
    check_like(p, m, "exp_avgs");
    check_like(p, v, "exp_avg_sqs");
    check_like(p, vmax, "max_exp_avg_sqs", !amsgrad);
    check_steps(p, s);
    if (p.empty()) {
      return;
    }
    if (decoupled) {
      at::_fused_adamw_(p, g, m, v, vmax, s, lr, beta1, beta2, weight_decay, eps, amsgrad,
                        maximize);
    } else {
      at::_fused_adam_(p, g, m, v, vmax, s, lr, beta1, beta2, weight_decay, eps, amsgrad,
                       maximize);
    }
  });
}

// at::_fused_adagrad_ (no grad_scale, no found_inf)
char *ktorch_fused_adagrad_(const at::Tensor *const *params, size_t nparams, const at::Tensor *const *grads,
                            size_t ngrads, const at::Tensor *const *sums, size_t nsums,
                            const at::Tensor *const *steps, size_t nsteps, double lr, double lr_decay,
                            double weight_decay, double eps, bool maximize) {
  return guard([&] {
    auto p = list(params, nparams);
    auto g = list(grads, ngrads);
    auto sm = list(sums, nsums);
    auto s = list(steps, nsteps);
    check_like(p, p, "params");
    check_like(p, g, "grads");
    check_like(p, sm, "sums");
    check_steps(p, s);
    if (p.empty()) {
      return;
    }
    at::_fused_adagrad_(p, g, sm, s, lr, lr_decay, weight_decay, eps, maximize);
  });
}

// torch.optim.rmsprop _multi_tensor_rmsprop (not maximize, not capturable, no complex), with
// the step counts left to the caller; grad_avgs are given when centered, momentum buffers
// when momentum > 0
char *ktorch_foreach_rmsprop_(const at::Tensor *const *params, size_t nparams,
                              const at::Tensor *const *grads, size_t ngrads,
                              const at::Tensor *const *square_avgs, size_t nsq,
                              const at::Tensor *const *grad_avgs, size_t ngavg,
                              const at::Tensor *const *bufs, size_t nbufs, double lr, double alpha,
                              double eps, double weight_decay, double momentum, bool centered) {
  return guard([&] {
    auto p = list(params, nparams);
    auto g = list(grads, ngrads);
    auto sq = list(square_avgs, nsq);
    auto ga = list(grad_avgs, ngavg);
    auto b = list(bufs, nbufs);
    check_like(p, p, "params");
    check_like(p, g, "grads");
    check_like(p, sq, "square_avgs");
    check_like(p, ga, "grad_avgs", !centered);
    check_like(p, b, "momentum buffers", !(momentum > 0));
    if (p.empty()) {
      return;
    }
    if (weight_decay != 0) {
      g = at::_foreach_add(g, p, at::Scalar(weight_decay));
    }
    at::_foreach_mul_(sq, at::Scalar(alpha));
    at::_foreach_addcmul_(sq, g, g, at::Scalar(1 - alpha));
    std::vector<at::Tensor> avg;
    if (centered) {
      at::_foreach_lerp_(ga, g, at::Scalar(1 - alpha));
      avg = at::_foreach_addcmul(sq, ga, ga, at::Scalar(-1));
      at::_foreach_sqrt_(avg);
    } else {
      avg = at::_foreach_sqrt(sq);
    }
    at::_foreach_add_(avg, at::Scalar(eps));
    if (momentum > 0) {
      at::_foreach_mul_(b, at::Scalar(momentum));
      at::_foreach_addcdiv_(b, g, avg);
      at::_foreach_add_(p, b, at::Scalar(-lr));
    } else {
      at::_foreach_addcdiv_(p, g, avg, at::Scalar(-lr));
    }
  });
}

// at::norm(at::stack(at::_foreach_norm(tensors))): the 2-norm of the tensors' 2-norms, as a
// new tensor in *out (the caller owns it; nothing is written on error). At least one tensor.
char *ktorch_foreach_norm_total(const at::Tensor *const *tensors, size_t n, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(out != nullptr, "out: null");
    auto t = list(tensors, n);
    TORCH_CHECK(!t.empty(), "tensors: none given");
    for (size_t i = 0; i < t.size(); ++i) {
      TORCH_CHECK(t[i].defined(), "tensors[", i, "]: undefined tensor");
    }
    *out = new at::Tensor(at::norm(at::stack(at::_foreach_norm(t))));
  });
}

// The LAMB update of ktorch-core's optim/lamb.rs (rules 2-6, timm's lamb with the trust ratio
// always applied) for parameters of one device and dtype, with the step counts left to the
// caller: grads divided by *clip when clip is not NULL (rule 1's max(n, 1)); per parameter the
// bias corrections 1 - beta1^t and sqrt(1 - beta2^t), both lists empty when not unbiased
char *ktorch_foreach_lamb_(const at::Tensor *const *params, size_t nparams,
                           const at::Tensor *const *grads, size_t ngrads,
                           const at::Tensor *const *exp_avgs, size_t navgs,
                           const at::Tensor *const *exp_avg_sqs, size_t nsqs,
                           const double *bias_correction1, size_t nbc1,
                           const double *bias_correction2_sqrt, size_t nbc2,
                           const at::Tensor *clip, double lr, double beta1, double beta2,
                           double eps, double weight_decay, bool trustclip, double trustmin,
                           double trustmax) {
  return guard([&] {
    auto p = list(params, nparams);
    auto g = list(grads, ngrads);
    auto m = list(exp_avgs, navgs);
    auto v = list(exp_avg_sqs, nsqs);
    auto bc1 = scalars(bias_correction1, nbc1);
    auto bc2 = scalars(bias_correction2_sqrt, nbc2);
    check_like(p, p, "params");
    check_like(p, g, "grads");
    check_like(p, m, "exp_avgs");
    check_like(p, v, "exp_avg_sqs");
    TORCH_CHECK(bc1.size() == bc2.size() && (bc1.empty() || bc1.size() == p.size()),
                "bias corrections: expected none or ", p.size(), " of each, given ", bc1.size(),
                " and ", bc2.size());
    TORCH_CHECK(clip == nullptr || (clip->defined() && clip->numel() == 1),
                "clip: not a one-element tensor");
    if (p.empty()) {
      return;
    }
    if (clip != nullptr) {
      g = at::_foreach_div(g, *clip);
    }
    at::_foreach_lerp_(m, g, at::Scalar(1 - beta1));
    at::_foreach_mul_(v, at::Scalar(beta2));
    at::_foreach_addcmul_(v, g, g, at::Scalar(1 - beta2));
    auto denom = at::_foreach_sqrt(v);
    if (!bc2.empty()) {
      at::_foreach_div_(denom, bc2);
    }
    at::_foreach_add_(denom, at::Scalar(eps));
    auto u = bc1.empty() ? at::_foreach_div(m, denom) : at::_foreach_div(m, bc1);
    if (!bc1.empty()) {
      at::_foreach_div_(u, denom);
    }
    if (weight_decay != 0) {
      at::_foreach_add_(u, p, at::Scalar(weight_decay));
    }
    // trust ratios ||w|| / ||u||, 1 where either norm is 0, for all parameters at once
    auto wn = at::stack(at::_foreach_norm(p));
    auto un = at::stack(at::_foreach_norm(u));
    auto r = at::where(wn.gt(0).logical_and_(un.gt(0)), wn.div(un), at::Scalar(1.0));
    if (trustclip) {
      r.clamp_(trustmin, trustmax);
    }
    at::_foreach_mul_(u, r.unbind());
    at::_foreach_add_(p, u, at::Scalar(-lr));
  });
}

// True when libtorch's CUDA hooks are the CUDA build's (libtorch_cuda loaded before anything
// asked about CUDA); false when they are the stub libtorch fixes for the process when asked
// first. Asks for them, so only called once libtorch_cuda.so is loaded (ktorch-shim's cuda.rs).
bool ktorch_cuda_hooks_built() {
  try {
    return at::detail::getCUDAHooks().isBuilt();
  } catch (...) {
    return false;
  }
}

} // extern "C"
