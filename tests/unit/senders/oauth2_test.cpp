// OAuth2 client credentials against a fake token endpoint, time on a FakeClock; and the STOW-RS
// sender using the token provider against a fake repository.
#include "senders/dicomweb/oauth2.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "fake_http_server.h"
#include "fakes/fake_clock.h"
#include "senders/sender.h"
#include "test_files.h"

namespace dirgw::senders::dicomweb {
namespace {

using dirgw::testing::FakeClock;
using dirgw::testing::FakeHttpServer;
using dirgw::testing::HttpRequest;
using dirgw::testing::HttpResponse;
using dirgw::testing::TempDir;
using namespace std::chrono_literals;

constexpr const char* kSecret = "s3cr3t+/=&value";

// A token endpoint that hands out "token-1", "token-2"... and records what it was asked.
class TokenEndpoint {
 public:
  explicit TokenEndpoint(int expires_in = 3600)
      : expires_in_(expires_in), server_([this](const HttpRequest& r) { return answer(r); }) {}
  std::string url() const { return server_.url() + "/oauth2/token"; }
  int fetches() const { return static_cast<int>(server_.requests().size()); }
  std::vector<HttpRequest> requests() const { return server_.requests(); }
  void answer_with(HttpResponse r) {
    std::lock_guard lock(mu_);
    canned_ = std::move(r);
  }

 private:
  HttpResponse answer(const HttpRequest&) {
    std::lock_guard lock(mu_);
    if (canned_) return *canned_;
    ++issued_;
    return {200,
            {{"Content-Type", "application/json"}},
            R"({"access_token":"token-)" + std::to_string(issued_) +
                R"(","token_type":"Bearer","expires_in":)" + std::to_string(expires_in_) + "}"};
  }

  int expires_in_;
  std::mutex mu_;
  int issued_ = 0;
  std::optional<HttpResponse> canned_;
  FakeHttpServer server_;  // last: stopped first, before the members its handler uses
};

std::filesystem::path write_secret(const TempDir& dir, unsigned mode = 0600) {
  auto p = dir.path() / "client-secret";
  std::ofstream(p) << kSecret << "\n";
  ::chmod(p.c_str(), mode);
  return p;
}

OAuth2Options options(const std::string& url, const std::filesystem::path& secret) {
  OAuth2Options o;
  o.token_url = url;
  o.client_id = "dirgw-lgh";
  o.client_secret_file = secret;
  o.scope = "dicom.write patient/*.write";
  o.refresh_margin = 60s;
  o.timeout = 3000ms;
  return o;
}

std::unique_ptr<OAuth2ClientCredentials> make(const OAuth2Options& o, const Clock& clock) {
  auto c = OAuth2ClientCredentials::create(o, clock);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().to_string());
  return std::move(c).value();
}

TEST(OAuth2, PostsClientCredentialsAndReusesTheToken) {
  TempDir dir;
  TokenEndpoint idp;
  FakeClock clock;
  auto client = make(options(idp.url(), write_secret(dir)), clock);
  auto t1 = client->token();
  ASSERT_TRUE(t1.ok()) << t1.error().to_string();
  EXPECT_EQ(*t1, "token-1");
  clock.advance(10min);
  auto t2 = client->token();
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(*t2, "token-1");
  ASSERT_EQ(idp.fetches(), 1);

  const auto requests = idp.requests();
  const HttpRequest& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/oauth2/token");
  EXPECT_EQ(r.headers.at("content-type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(r.body, "grant_type=client_credentials&scope=dicom.write%20patient%2F%2A.write");
  // Basic base64("dirgw-lgh:" + form-encoded secret); the secret is never in the body.
  EXPECT_EQ(r.headers.at("authorization"), "Basic ZGlyZ3ctbGdoOnMzY3IzdCUyQiUyRiUzRCUyNnZhbHVl");
  EXPECT_EQ(r.body.find("s3cr3t"), std::string::npos);
}

TEST(OAuth2, CredentialsInTheBodyWhenAsked) {
  TempDir dir;
  TokenEndpoint idp;
  FakeClock clock;
  auto o = options(idp.url(), write_secret(dir));
  o.client_auth = OAuth2Options::ClientAuth::kPost;
  o.scope.clear();
  ASSERT_TRUE(make(o, clock)->token().ok());
  const auto requests = idp.requests();
  const HttpRequest& r = requests.at(0);
  EXPECT_EQ(r.headers.count("authorization"), 0u);
  EXPECT_EQ(r.body,
            "grant_type=client_credentials&client_id=dirgw-lgh&client_secret="
            "s3cr3t%2B%2F%3D%26value");
}

TEST(OAuth2, RefreshesShortlyBeforeExpiry) {
  TempDir dir;
  TokenEndpoint idp(/*expires_in=*/600);
  FakeClock clock;
  auto client = make(options(idp.url(), write_secret(dir)), clock);  // margin 60 s
  EXPECT_EQ(*client->token(), "token-1");
  clock.advance(539s);
  EXPECT_EQ(*client->token(), "token-1");
  clock.advance(1s);  // 540 s: within the margin of expiry
  EXPECT_EQ(*client->token(), "token-2");
  EXPECT_EQ(idp.fetches(), 2);
}

TEST(OAuth2, ShortLivedTokensAreRefreshedAtHalfTheirLifetime) {
  TempDir dir;
  TokenEndpoint idp(/*expires_in=*/30);  // shorter than the 60 s margin
  FakeClock clock;
  auto client = make(options(idp.url(), write_secret(dir)), clock);
  EXPECT_EQ(*client->token(), "token-1");
  clock.advance(14s);
  EXPECT_EQ(*client->token(), "token-1");
  clock.advance(1s);
  EXPECT_EQ(*client->token(), "token-2");
}

TEST(OAuth2, InvalidateForgetsOnlyTheRejectedToken) {
  TempDir dir;
  TokenEndpoint idp;
  FakeClock clock;
  auto client = make(options(idp.url(), write_secret(dir)), clock);
  EXPECT_EQ(*client->token(), "token-1");
  client->invalidate("token-0");  // an older token: nothing happens
  EXPECT_EQ(*client->token(), "token-1");
  client->invalidate("token-1");
  EXPECT_EQ(*client->token(), "token-2");
  EXPECT_EQ(idp.fetches(), 2);
}

TEST(OAuth2, ConcurrentCallersShareOneFetch) {
  TempDir dir;
  TokenEndpoint idp;
  FakeClock clock;
  auto client = make(options(idp.url(), write_secret(dir)), clock);
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      auto t = client->token();
      if (t.ok() && *t == "token-1") ++good;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 6);
  EXPECT_EQ(idp.fetches(), 1);
}

TEST(OAuth2, EndpointDownIsARetryableError) {
  TempDir dir;
  FakeClock clock;
  std::string url;
  {
    TokenEndpoint gone;
    url = gone.url();
  }  // nobody listens there now
  auto client = make(options(url, write_secret(dir)), clock);
  auto t = client->token();
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(t.error().retryable()) << t.error().to_string();
  EXPECT_EQ(t.error().code, ErrorCode::kNetwork);
  EXPECT_NE(t.error().detail.find("cannot connect"), std::string::npos) << t.error().detail;
}

// 429/503 with Retry-After: the endpoint is not asked again before then (bounded), and the
// provider says how long is left, so the forwarder holds the destination that long.
TEST(OAuth2, BusyEndpointsRetryAfterIsHonoured) {
  TempDir dir;
  TokenEndpoint idp;
  FakeClock clock;
  auto o = options(idp.url(), write_secret(dir));
  o.retry_after_max = 20s;
  auto client = make(o, clock);
  EXPECT_FALSE(client->retry_after().has_value());
  idp.answer_with({429, {{"Retry-After", "30"}}, ""});
  auto t = client->token();
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, ErrorCode::kUnavailable);
  ASSERT_TRUE(client->retry_after().has_value());
  EXPECT_EQ(*client->retry_after(), 20s);  // capped at retry_after_max
  EXPECT_EQ(idp.fetches(), 1);
  clock.advance(15s);
  EXPECT_FALSE(client->token().ok());  // not asked: still inside its Retry-After
  EXPECT_EQ(idp.fetches(), 1);
  EXPECT_EQ(*client->retry_after(), 5s);
  clock.advance(5s);
  EXPECT_FALSE(client->retry_after().has_value());
  idp.answer_with({503, {}, ""});  // no Retry-After: the next call may ask again at once
  EXPECT_FALSE(client->token().ok());
  EXPECT_EQ(idp.fetches(), 2);
  EXPECT_FALSE(client->retry_after().has_value());
}

TEST(OAuth2, EndpointErrorsAreValuesWithoutSecrets) {
  TempDir dir;
  TokenEndpoint idp;
  FakeClock clock;
  auto client = make(options(idp.url(), write_secret(dir)), clock);
  struct Case {
    HttpResponse answer;
    ErrorCode code;
    const char* says;
  } cases[] = {
      {{401,
        {{"Content-Type", "application/json"}},
        R"({"error":"invalid_client","error_description":"secret s3cr3t wrong for Jane Doe"})"},
       ErrorCode::kRefused,
       "invalid_client"},
      {{400, {}, "<html>bad</html>"}, ErrorCode::kRefused, "HTTP 400"},
      {{503, {}, ""}, ErrorCode::kUnavailable, "HTTP 503"},
      {{429, {}, ""}, ErrorCode::kUnavailable, "HTTP 429"},
      {{200, {}, "not json"}, ErrorCode::kProtocol, "not a JSON object"},
      {{200, {}, R"({"token_type":"Bearer"})"}, ErrorCode::kProtocol, "no access_token"},
      {{200, {}, R"({"access_token":"a b","token_type":"Bearer"})"},
       ErrorCode::kProtocol,
       "not printable"},
      {{200, {}, R"({"access_token":"abc","token_type":"mac"})"},
       ErrorCode::kProtocol,
       "not Bearer"},
  };
  for (const auto& c : cases) {
    idp.answer_with(c.answer);
    auto t = client->token();
    ASSERT_FALSE(t.ok()) << c.says;
    EXPECT_EQ(t.error().code, c.code) << c.says << ": " << t.error().to_string();
    EXPECT_NE(t.error().detail.find(c.says), std::string::npos) << t.error().detail;
    EXPECT_EQ(t.error().detail.find("s3cr3t"), std::string::npos) << t.error().detail;
    EXPECT_EQ(t.error().detail.find("Jane"), std::string::npos) << t.error().detail;
  }
  // expires_in as a string, no token_type: accepted.
  idp.answer_with({200, {}, R"({"access_token":"abc","expires_in":"120"})"});
  auto ok = client->token();
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(*ok, "abc");
}

// expires_in is the token server's number: absurd ones (beyond a day's worth of years, beyond
// int64, a float beyond it) neither overflow the clock arithmetic nor keep a token for ever: the
// lifetime is capped at one day, so the token is asked for again.
TEST(OAuth2, AbsurdLifetimesAreCapped) {
  TempDir dir;
  TokenEndpoint idp;
  FakeClock clock;
  auto client = make(options(idp.url(), write_secret(dir)), clock);
  for (const char* expires :
       {"9223372036854775807", "1e300", "18446744073709551615", "-5", "\"99999999999\""}) {
    idp.answer_with(
        {200, {}, std::string(R"({"access_token":"abc","expires_in":)") + expires + "}"});
    clock.advance(std::chrono::hours(24 * 400));  // whatever came before has expired
    auto t = client->token();
    ASSERT_TRUE(t.ok()) << expires << ": " << t.error().to_string();
    EXPECT_EQ(*t, "abc") << expires;
    idp.answer_with({200, {}, R"({"access_token":"next","expires_in":3600})"});
    clock.advance(std::chrono::hours(25));
    auto again = client->token();
    ASSERT_TRUE(again.ok()) << expires;
    EXPECT_EQ(*again, "next") << expires << ": the first token is not kept beyond a day";
  }
}

TEST(OAuth2, RefreshFailureKeepsUsingAStillValidToken) {
  TempDir dir;
  TokenEndpoint idp(/*expires_in=*/600);
  FakeClock clock;
  auto client = make(options(idp.url(), write_secret(dir)), clock);
  EXPECT_EQ(*client->token(), "token-1");
  idp.answer_with({503, {}, ""});
  clock.advance(570s);  // due for refresh, not expired
  EXPECT_EQ(*client->token(), "token-1");
  clock.advance(30s);  // expired
  EXPECT_FALSE(client->token().ok());
}

TEST(OAuth2, SecretFileMustBePrivate) {
  TempDir dir;
  FakeClock clock;
  for (unsigned mode : {0640u, 0604u, 0660u, 0644u}) {
    auto o = options("https://idp.example.org/token", write_secret(dir, mode));
    auto c = OAuth2ClientCredentials::create(o, clock);
    ASSERT_FALSE(c.ok()) << std::oct << mode;
    EXPECT_EQ(c.error().code, ErrorCode::kConfig);
    EXPECT_NE(c.error().detail.find("group and others must have no access"), std::string::npos)
        << c.error().detail;
  }
  EXPECT_TRUE(check_secret_file(write_secret(dir, 0600)).ok());
  EXPECT_TRUE(check_secret_file(write_secret(dir, 0400)).ok());
  EXPECT_FALSE(check_secret_file(dir.path() / "missing").ok());
  EXPECT_FALSE(check_secret_file(dir.path()).ok());  // a directory

  // A file made readable after start-up is refused at the next fetch.
  TokenEndpoint idp;
  auto secret = write_secret(dir, 0600);
  auto client = make(options(idp.url(), secret), clock);
  ::chmod(secret.c_str(), 0644);
  auto t = client->token();
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, ErrorCode::kConfig);
  EXPECT_EQ(idp.fetches(), 0);
}

TEST(OAuth2, OptionsAreChecked) {
  TempDir dir;
  FakeClock clock;
  auto secret = write_secret(dir);
  auto o = options("http://idp.example.org/token", secret);  // secret in clear over a network
  EXPECT_FALSE(OAuth2ClientCredentials::create(o, clock).ok());
  o.token_url = "http://localhost.example.org/token";
  EXPECT_FALSE(OAuth2ClientCredentials::create(o, clock).ok());
  o.token_url = "http://localhost:8080/token";
  EXPECT_TRUE(OAuth2ClientCredentials::create(o, clock).ok());
  o.client_id.clear();
  EXPECT_FALSE(OAuth2ClientCredentials::create(o, clock).ok());
}

// --- the STOW-RS sender with a token provider ---

std::string accept_one(const std::string& uid) {
  return R"({"00081199":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.7"]},)"
         R"("00081155":{"vr":"UI","Value":[")" +
         uid + R"("]}}]}})";
}

// A repository that accepts one-instance batches from bearers of the tokens it is told about.
class Repository {
 public:
  Repository() : server_([this](const HttpRequest& r) { return answer(r); }) {}
  void allow(const std::string& token) {
    std::lock_guard lock(mu_);
    allowed_ = "Bearer " + token;
  }
  std::string url() const { return server_.url(); }
  std::vector<HttpRequest> requests() const { return server_.requests(); }

 private:
  HttpResponse answer(const HttpRequest& r) {
    std::lock_guard lock(mu_);
    auto auth = r.headers.find("authorization");
    if (auth == r.headers.end() || auth->second != allowed_) return {401, {}, ""};
    auto bar = r.body.find('|');
    auto at = r.body.find("uid:");
    std::string uid = r.body.substr(at + 4, bar - at - 4);
    return {200, {{"Content-Type", "application/dicom+json"}}, accept_one(uid)};
  }
  std::mutex mu_;
  std::string allowed_;
  FakeHttpServer server_;
};

StowRsOptions stow_options(const std::string& url, std::shared_ptr<TokenProvider> provider) {
  StowRsOptions o;
  o.base_url = url + "/dicom-web";
  o.connect_timeout = 2000ms;
  o.request_timeout = 5000ms;
  o.token_provider = std::move(provider);
  return o;
}

Item item(const TempDir& dir, const std::string& uid) {
  return write_item(dir, "obj-" + uid, "uid:" + uid + "|payload", uid);
}

TEST(StowRsWithOAuth2, TokenFetchedOnceAndSentWithEveryRequest) {
  TempDir dir;
  TokenEndpoint idp;
  Repository repo;
  repo.allow("token-1");
  FakeClock clock;
  std::shared_ptr<TokenProvider> provider = make(options(idp.url(), write_secret(dir)), clock);
  auto sender = make_stow_rs_sender(stow_options(repo.url(), provider));
  for (int i = 0; i < 3; ++i) {
    Outcome o = sender->send({item(dir, "1.2.3." + std::to_string(i))});
    EXPECT_EQ(o.kind, OutcomeKind::kOk) << o.message;
    EXPECT_FALSE(o.auth_failed);
  }
  EXPECT_EQ(idp.fetches(), 1);
  for (const auto& r : repo.requests()) EXPECT_EQ(r.headers.at("authorization"), "Bearer token-1");
}

TEST(StowRsWithOAuth2, A401IsAnAuthFailureAndTheNextRequestGetsAFreshToken) {
  TempDir dir;
  TokenEndpoint idp;
  Repository repo;
  repo.allow("token-2");  // token-1 was revoked early
  FakeClock clock;
  std::shared_ptr<TokenProvider> provider = make(options(idp.url(), write_secret(dir)), clock);
  auto sender = make_stow_rs_sender(stow_options(repo.url(), provider));

  Outcome first = sender->send({item(dir, "1.2.4.1")});
  EXPECT_TRUE(first.auth_failed);
  EXPECT_EQ(first.http_status, 401);
  EXPECT_EQ(first.kind, OutcomeKind::kRetry);  // the studies are not at fault
  ASSERT_EQ(first.instances.size(), 1u);
  EXPECT_EQ(first.instances[0].status, InstanceStatus::kRetry);
  EXPECT_EQ(first.message.find("token-"), std::string::npos) << first.message;

  Outcome second = sender->send({item(dir, "1.2.4.1")});
  EXPECT_EQ(second.kind, OutcomeKind::kOk) << second.message;
  EXPECT_FALSE(second.auth_failed);
  EXPECT_EQ(idp.fetches(), 2);
}

TEST(StowRsWithOAuth2, NoTokenMeansNothingIsSent) {
  TempDir dir;
  TokenEndpoint idp;
  Repository repo;
  FakeClock clock;
  std::shared_ptr<TokenProvider> provider = make(options(idp.url(), write_secret(dir)), clock);
  auto sender = make_stow_rs_sender(stow_options(repo.url(), provider));

  idp.answer_with({503, {}, ""});  // endpoint busy: retry later, not an auth failure
  Outcome busy = sender->send({item(dir, "1.2.5.1")});
  EXPECT_EQ(busy.kind, OutcomeKind::kRetry);
  EXPECT_FALSE(busy.auth_failed);
  EXPECT_NE(busy.message.find("no access token"), std::string::npos) << busy.message;

  EXPECT_FALSE(busy.retry_after.has_value());

  idp.answer_with({503, {{"Retry-After", "7"}}, ""});  // busy, and says for how long
  Outcome told = sender->send({item(dir, "1.2.5.1")});
  EXPECT_EQ(told.kind, OutcomeKind::kRetry);
  ASSERT_TRUE(told.retry_after.has_value());
  EXPECT_EQ(*told.retry_after, 7s);
  clock.advance(8s);

  idp.answer_with({401, {{"Content-Type", "application/json"}}, R"({"error":"invalid_client"})"});
  Outcome refused = sender->send({item(dir, "1.2.5.1")});
  EXPECT_EQ(refused.kind, OutcomeKind::kRetry);
  EXPECT_TRUE(refused.auth_failed);  // credentials need a person: pause the destination
  EXPECT_NE(refused.message.find("invalid_client"), std::string::npos) << refused.message;
  EXPECT_TRUE(repo.requests().empty());
}

TEST(StowRsWithOAuth2, ForbiddenWithoutATokenProviderKeepsItsVerdictButIsFlagged) {
  TempDir dir;
  FakeHttpServer server([](const HttpRequest&) { return HttpResponse{403, {}, "no"}; });
  StowRsOptions o = stow_options(server.url(), nullptr);
  auto sender = make_stow_rs_sender(o);
  Outcome out = sender->send({item(dir, "1.2.6.1")});
  EXPECT_EQ(out.kind, OutcomeKind::kPermanent);  // as before this option existed
  EXPECT_TRUE(out.auth_failed);
}

}  // namespace
}  // namespace dirgw::senders::dicomweb
