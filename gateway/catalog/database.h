// The catalog's database layer: the one owner of the SQLite connections. Every catalog part
// (ingest, delivery, policy, consent, queries, operator actions, audit) does its work through
// write() or read(), which take the lock, open the transaction and turn SQLite errors into
// Result values — the only place where that is written.
//
// - write(): the single read-write connection, serialised by a mutex, BEGIN IMMEDIATE ... COMMIT
//   (rolled back when the function throws or returns an error); synchronous=FULL.
// - read(): a read-only connection of its own (WAL readers never wait for the writer and never
//   delay it), for what operators and reports look at: status, studies, audit export...
// Statements are compiled once per connection (sqlite::Connection's cache).
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "catalog/send_gate.h"
#include "catalog/sqlite/sqlite.h"
#include "common/clock.h"
#include "common/result.h"

namespace dirgw::catalog {

using sqlite::Connection;

Error db_error(const sqlite::SqliteError& e);

namespace detail {
template <class T>
struct IsResult : std::false_type {};
template <class T>
struct IsResult<Result<T>> : std::true_type {};
}  // namespace detail

class Database {
 public:
  // Opens (creating if needed) and migrates the catalog; WAL, synchronous=FULL.
  static Result<std::unique_ptr<Database>> open(const std::filesystem::path& path,
                                                std::vector<std::string> destinations,
                                                const Clock& clock);

  // fn(Connection&) inside one write transaction. fn may return a value or a Result; an error
  // Result rolls the transaction back.
  template <class F>
  auto write(F&& fn) {
    std::lock_guard lock(write_mutex_);
    return run(*writer_, true, std::forward<F>(fn));
  }
  // fn(Connection&) on the write connection, without a transaction (a single statement).
  template <class F>
  auto locked(F&& fn) {
    std::lock_guard lock(write_mutex_);
    return run(*writer_, false, std::forward<F>(fn));
  }
  // fn(Connection&) on the read-only connection, in one read transaction (a consistent view).
  template <class F>
  auto read(F&& fn) {
    std::lock_guard lock(read_mutex_);
    return run(*reader_, false, std::forward<F>(fn), true);
  }

  const Clock& clock() const { return clock_; }
  std::int64_t now_ms() const { return to_epoch_ms(clock_.now()); }
  const std::vector<std::string>& destinations() const { return destinations_; }
  SendGate& send_gate() { return send_gate_; }

 private:
  Database(std::unique_ptr<Connection> writer, std::unique_ptr<Connection> reader,
           std::vector<std::string> destinations, const Clock& clock);

  template <class F>
  static auto run(Connection& c, bool transaction, F&& fn, bool snapshot = false) {
    using R = std::invoke_result_t<F, Connection&>;
    using Out = std::conditional_t<detail::IsResult<R>::value, R, Result<R>>;
    try {
      std::optional<sqlite::Transaction> tx;
      if (transaction) tx.emplace(c);
      if (snapshot) c.exec("BEGIN");
      struct EndRead {
        Connection& c;
        bool on;
        ~EndRead() {
          if (!on) return;
          try {
            c.exec("COMMIT");
          } catch (...) {
          }
        }
      } end_read{c, snapshot};
      if constexpr (std::is_void_v<R>) {
        fn(c);
        if (tx) tx->commit();
        return Out{};
      } else {
        R r = fn(c);
        if constexpr (detail::IsResult<R>::value) {
          if (!r) return r;  // the transaction rolls back
        }
        if (tx) tx->commit();
        return Out(std::move(r));
      }
    } catch (const sqlite::SqliteError& e) {
      return Out(db_error(e));
    }
  }

  SendGate send_gate_;  // taken before write_mutex_, never after (send_gate.h)
  std::mutex write_mutex_;
  std::mutex read_mutex_;
  std::unique_ptr<Connection> writer_;
  std::unique_ptr<Connection> reader_;
  std::vector<std::string> destinations_;
  const Clock& clock_;
};

}  // namespace dirgw::catalog
