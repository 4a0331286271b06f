// What a policy step decides about an object or a study: accept, hold (with a reason) or reject
// (with reasons). A plain value: the caller records it in the catalog and moves the study on.
// Reasons are stable codes and our own words, never a value taken from the object.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace dirgw::policy {

struct Decision {
  enum class Kind { kAccept, kHold, kReject };

  Kind kind = Kind::kAccept;
  // kHold: exactly one reason; kReject: at least one; kAccept: none.
  std::vector<std::string> reasons;

  static Decision accept() { return Decision{}; }
  static Decision hold(std::string reason) {
    return Decision{Kind::kHold, std::vector<std::string>{std::move(reason)}};
  }
  static Decision reject(std::vector<std::string> why) {
    return Decision{Kind::kReject, std::move(why)};
  }

  bool accepted() const { return kind == Kind::kAccept; }
  bool held() const { return kind == Kind::kHold; }
  bool rejected() const { return kind == Kind::kReject; }
};

}  // namespace dirgw::policy
