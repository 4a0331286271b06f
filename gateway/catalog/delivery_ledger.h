// The catalog's delivery part: what is due for each destination, the last check before a
// request (with the send gate), the repository's answers, and the withdrawal-notification outbox.
#pragma once

#include "catalog/database.h"
#include "catalog/types.h"

namespace dirgw::catalog {

class DeliveryLedger {
 public:
  explicit DeliveryLedger(Database& db) : db_(db) {}

  // Pending deliveries of READY/SENDING/RETRY_WAIT studies due at `now` (and of RECEIVING
  // studies, those cleared on their own: send_while_receiving), one study at a time,
  // within the batch limits: STAT studies (priority > 0) first, then oldest first. stat_only:
  // only STAT studies (a destination outside its upload window).
  Result<std::vector<DueItem>> due_deliveries(const std::string& destination, std::int64_t now_ms,
                                              int max_count, std::uint64_t max_bytes,
                                              bool stat_only = false);
  // Earliest next_attempt_at among pending deliveries of sendable (STAT, with stat_only)
  // studies.
  Result<std::optional<std::int64_t>> next_due(const std::string& destination,
                                               bool stat_only = false);
  // The last check before a request, atomic with marking the batch in flight: keeps the items
  // whose study may still be sent (a RECEIVING study: only its instances cleared to go while
  // receiving; the study stays RECEIVING), moves their deliveries to 'sending' and their
  // studies to SENDING. The returned permit holds the send gate; release it once the request has
  // left.
  Result<SendBatch> begin_send(const std::string& destination, std::vector<DueItem> due);
  // The repository's answers for a batch begun with begin_send (or, after a lost outcome,
  // recorded again). An answer that arrives for a study withdrawn meanwhile is still recorded as
  // it is: accepted instances are 'sent' (the repository holds them), the rest 'withdrawn'.
  Result<void> record_deliveries(const std::string& destination,
                                 const std::vector<DeliveryUpdate>& updates);
  // The forwarder's one commit per batch (a destination with one request at a time), in one
  // transaction: `answers` as record_deliveries records them, the deliveries of `abandon` (a begun
  // batch that will not go after all) 'pending' again, and the last check of `next` as
  // begin_send does it. With `next` empty no permit is taken and none is returned.
  Result<SendBatch> commit_batch(const std::string& destination,
                                 const std::vector<DeliveryUpdate>& answers,
                                 std::vector<DueItem> next, const std::vector<DueItem>& abandon);
  Result<void> record_destination_error(const std::string& destination, const std::string& error);
  // At start: deliveries left 'sending' by a stop mid-request go back to 'pending' (or to
  // 'withdrawn', marked in doubt, when their study was withdrawn); waiting withdrawal
  // notifications are written out. Returns how many deliveries were in flight.
  Result<int> recover_interrupted_sends();
  // The object a destination should receive for an instance: derived if there is one.
  Result<std::optional<std::pair<std::string, std::uint64_t>>> derived_object(
      std::int64_t instance_id, const std::string& destination);

  // Withdrawal notifications (outbox): due ones for a destination, and their outcome.
  Result<std::vector<Notification>> due_notifications(const std::string& destination,
                                                      std::int64_t now_ms);
  Result<void> record_notification(std::int64_t id, bool sent, const std::string& error,
                                   std::int64_t next_attempt_at);
  Result<std::optional<std::int64_t>> next_notification(const std::string& destination);

  SendGate& send_gate_for_test() { return db_.send_gate(); }

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
