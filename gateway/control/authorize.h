// Who may use the control socket. The socket is 0660 root:dirgw, so the file system already
// decides who may connect; the peer's credentials are checked again for each request: root, the
// daemon's own user, or a member (primary or supplementary) of group dirgw.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "control/protocol.h"

namespace dirgw::control {

// What the rule needs to know of the system's users and groups.
struct Accounts {
  unsigned daemon_uid = 0;
  std::optional<unsigned> dirgw_gid;  // none: there is no group dirgw
  // Every group of a user (primary and supplementary); empty when the user is unknown.
  std::function<std::vector<unsigned>(unsigned uid)> groups_of;
};

bool authorized(const Peer& peer, const Accounts& accounts);

// The rule against this host's accounts (geteuid, getgrnam, getpwuid, getgrouplist).
Accounts system_accounts();
bool authorized(const Peer& peer);

}  // namespace dirgw::control
