#include "control/authorize.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>

namespace dirgw::control {

bool authorized(const Peer& peer, const Accounts& accounts) {
  if (peer.uid == 0 || peer.uid == accounts.daemon_uid) return true;
  if (!accounts.dirgw_gid) return false;
  if (peer.gid == *accounts.dirgw_gid) return true;
  if (!accounts.groups_of) return false;
  const auto groups = accounts.groups_of(peer.uid);
  return std::find(groups.begin(), groups.end(), *accounts.dirgw_gid) != groups.end();
}

Accounts system_accounts() {
  Accounts a;
  a.daemon_uid = ::geteuid();
  if (group* g = ::getgrnam("dirgw"); g != nullptr) a.dirgw_gid = g->gr_gid;
  a.groups_of = [](unsigned uid) {
    std::vector<unsigned> out;
    passwd* pw = ::getpwuid(uid);
    if (pw == nullptr) return out;
    int n = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    if (::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0) return out;
    out.assign(groups.begin(), groups.begin() + n);
    return out;
  };
  return a;
}

bool authorized(const Peer& peer) { return authorized(peer, system_accounts()); }

}  // namespace dirgw::control
