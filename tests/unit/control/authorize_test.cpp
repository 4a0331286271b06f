#include "control/authorize.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace dirgw::control {
namespace {

constexpr unsigned kDaemon = 990, kGroup = 991, kAlice = 1000, kBob = 1001;

Accounts accounts(std::optional<unsigned> group = kGroup) {
  Accounts a;
  a.daemon_uid = kDaemon;
  a.dirgw_gid = group;
  a.groups_of = [](unsigned uid) {
    if (uid == kAlice) return std::vector<unsigned>{100, kGroup};  // dirgw as a supplementary
    return std::vector<unsigned>{100};
  };
  return a;
}

Peer peer(unsigned uid, unsigned gid) { return Peer{42, uid, gid}; }

TEST(Authorize, RootAndTheDaemonsOwnUserMayAlways) {
  EXPECT_TRUE(authorized(peer(0, 0), accounts()));
  EXPECT_TRUE(authorized(peer(kDaemon, 100), accounts()));
  EXPECT_TRUE(authorized(peer(0, 0), accounts(std::nullopt)));
  EXPECT_TRUE(authorized(peer(kDaemon, 100), accounts(std::nullopt)));
}

TEST(Authorize, MembersOfGroupDirgwMay) {
  EXPECT_TRUE(authorized(peer(kBob, kGroup), accounts()));  // primary group of the process
  EXPECT_TRUE(authorized(peer(kAlice, 100), accounts()));   // supplementary group of the user
}

TEST(Authorize, OthersMayNot) {
  EXPECT_FALSE(authorized(peer(kBob, 100), accounts()));
  // Without a group dirgw only root and the daemon's user are left.
  EXPECT_FALSE(authorized(peer(kAlice, 100), accounts(std::nullopt)));
  EXPECT_FALSE(authorized(peer(kBob, kGroup), accounts(std::nullopt)));
  // Unknown users have no groups.
  Accounts no_lookup = accounts();
  no_lookup.groups_of = nullptr;
  EXPECT_FALSE(authorized(peer(kAlice, 100), no_lookup));
}

TEST(Authorize, SystemAccountsKnowTheDaemonsUser) {
  const Accounts a = system_accounts();
  EXPECT_EQ(a.daemon_uid, ::geteuid());
  EXPECT_TRUE(authorized(peer(::geteuid(), ::getegid())));
}

}  // namespace
}  // namespace dirgw::control
