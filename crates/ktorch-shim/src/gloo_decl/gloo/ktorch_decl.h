// Declarations of the gloo types that torch's ProcessGroupGloo.hpp names, for compiling against
// a torch wheel, which ships c10d's headers but not gloo's (ktorch-shim's dist.cpp).
//
// Only what ProcessGroupGloo.hpp needs to parse. The types it holds through pointers
// (shared_ptr, unique_ptr) are left incomplete where it can be, so that a gloo object held by
// value would be a compile error here rather than a wrong sizeof(ProcessGroupGloo); Context
// declares the one method an inline function of the header calls (ProcessGroupGloo::setTimeout,
// emitted with the class's vtable in libtorch_cpu, never here), and rendezvous::Store the
// virtual functions that ProcessGroupGloo::GlooStore, derived from it, overrides. dist.cpp
// checks sizeof(ProcessGroupGloo) against libtorch 2.11's. dist.cpp never creates a GlooStore nor calls a gloo function: libtorch_cpu holds
// the code and vtables of every gloo-based class, and dist.cpp only calls libtorch's exported
// functions (ProcessGroupGloo's constructor, Options, device factories).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace gloo {

class Context {
 public:
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  void setTimeout(std::chrono::milliseconds timeout);
};

namespace transport {
class Device;
class UnboundBuffer;
} // namespace transport

namespace rendezvous {
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys,
                    const std::chrono::milliseconds& timeout) = 0;
};
} // namespace rendezvous

} // namespace gloo
