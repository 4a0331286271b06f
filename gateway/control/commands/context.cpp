#include "control/commands/context.h"

#include <pwd.h>

namespace dirgw::control::commands {

std::string actor_of(const Peer& peer) {
  passwd* pw = ::getpwuid(peer.uid);
  return audit::user_actor(pw != nullptr ? pw->pw_name : "unknown", peer.uid);
}

std::string who(const Peer& peer) {
  passwd* pw = ::getpwuid(peer.uid);
  return std::string(pw != nullptr ? pw->pw_name : "uid") + "(" + std::to_string(peer.uid) + ")";
}

void record_audit(const Context& ctx, audit::EventType type, const std::string& actor,
                  const std::string& outcome, const std::string& study_uid, nlohmann::json detail,
                  const std::string& patient_ref) {
  audit::Event e;
  e.type = type;
  e.actor = actor;
  e.outcome = outcome;
  e.study_uid = study_uid;
  e.detail = std::move(detail);
  e.patient_ref = patient_ref;
  if (ctx.audit) ctx.audit(std::move(e));
}

}  // namespace dirgw::control::commands
