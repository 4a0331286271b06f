// Upload windows: parsing, overnight windows, several windows per destination, both DST changes
// of America/Toronto in 2026, next_open/next_close across the end of the week. Expected instants
// are written in UTC by hand (EST = UTC-5, EDT = UTC-4), not computed with the tz library.
#include "scheduler/windows.h"

#include <gtest/gtest.h>

#include <chrono>

#include "fakes/fake_clock.h"

namespace dirgw::scheduler {
namespace {

using namespace std::chrono_literals;
using dirgw::testing::FakeClock;

// Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil).
std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

TimePoint utc(int y, unsigned mo, unsigned d, int h, int mi = 0) {
  return TimePoint(std::chrono::hours(24 * days_from_civil(y, mo, d)) + std::chrono::hours(h) +
                   std::chrono::minutes(mi));
}

WindowSet toronto(const std::vector<std::string>& specs) {
  auto set = parse_windows(specs, "America/Toronto");
  EXPECT_TRUE(set.ok()) << (set.ok() ? "" : set.error().to_string());
  return std::move(set).value();
}

std::string error_of(const std::vector<std::string>& specs, const std::string& tz = "UTC") {
  auto set = parse_windows(specs, tz);
  return set.ok() ? std::string("(accepted)") : set.error().detail;
}

TEST(WindowParse, AcceptsDayListsRangesAndCanonicalises) {
  struct Case {
    const char* spec;
    const char* canonical;
  } cases[] = {
      {"Mon-Fri 19:00-07:00", "Mon,Tue,Wed,Thu,Fri 19:00-07:00"},
      {"Sat,Sun 00:00-24:00", "Sat,Sun 00:00-24:00"},
      {"Mon-Sun 12:00-13:00", "Mon,Tue,Wed,Thu,Fri,Sat,Sun 12:00-13:00"},
      {"  sat, SUN   0:00-24:00 ", "Sat,Sun 00:00-24:00"},
      {"Fri-Mon 22:00-06:00", "Mon,Fri,Sat,Sun 22:00-06:00"},  // a range over the week end
      {"Mon,Wed-Thu,Mon 08:30-09:15", "Mon,Wed,Thu 08:30-09:15"},
      {"Tue 22:00-00:00", "Tue 22:00-24:00"},  // ending at midnight is the same as 24:00
  };
  for (const auto& c : cases) {
    auto w = parse_window(c.spec);
    ASSERT_TRUE(w.ok()) << c.spec << ": " << w.error().to_string();
    EXPECT_EQ(w->to_string(), c.canonical) << c.spec;
  }
  auto overnight = parse_window("Mon 19:00-07:00");
  ASSERT_TRUE(overnight.ok());
  EXPECT_TRUE(overnight->overnight());
  EXPECT_FALSE(parse_window("Mon 00:00-24:00")->overnight());
}

TEST(WindowParse, ErrorsNameTheEntryAndWhatIsAllowed) {
  std::string e = error_of({"Mon-Fri 19:00-07:00", "Mon-Fry 19:00-07:00"});
  EXPECT_NE(e.find("windows[1]"), std::string::npos) << e;
  EXPECT_NE(e.find("\"Mon-Fry 19:00-07:00\""), std::string::npos) << e;
  EXPECT_NE(e.find("unknown day \"Fry\""), std::string::npos) << e;
  EXPECT_NE(e.find("Mon Tue Wed Thu Fri Sat Sun"), std::string::npos) << e;

  EXPECT_NE(
      error_of({"Mon 25:00-26:00"}).find("start \"25:00\" is not a time HH:MM from 00:00 to 23:59"),
      std::string::npos);
  EXPECT_NE(
      error_of({"Mon 10:00-24:30"}).find("end \"24:30\" is not a time HH:MM from 00:00 to 24:00"),
      std::string::npos);
  EXPECT_NE(error_of({"Mon 24:00-02:00"}).find("start"), std::string::npos);
  EXPECT_NE(error_of({"Mon 10:60-11:00"}).find("start"), std::string::npos);
  EXPECT_NE(error_of({"Mon 08:00-08:00"}).find("00:00-24:00"), std::string::npos);
  EXPECT_NE(error_of({"Mon-Fri"}).find("DAYS HH:MM-HH:MM"), std::string::npos);
  EXPECT_NE(error_of({"19:00-07:00"}).find("DAYS HH:MM-HH:MM"), std::string::npos);
  EXPECT_NE(error_of({"Mon 1900-0700"}).find("HH:MM"), std::string::npos);
  EXPECT_NE(error_of({"Mon,,Tue 10:00-11:00"}).find("empty day"), std::string::npos);
  EXPECT_NE(error_of({"Monday 10:00-11:00"}).find("unknown day \"Monday\""), std::string::npos);
  EXPECT_NE(error_of({""}).find("windows[0]"), std::string::npos);
  EXPECT_NE(error_of({}).find("at least one"), std::string::npos);
}

TEST(WindowParse, TimeZoneMustBeAnIanaName) {
  std::string e = error_of({"Mon 10:00-11:00"}, "Eastern Time");
  EXPECT_NE(e.find("unknown time zone \"Eastern Time\""), std::string::npos) << e;
  EXPECT_NE(e.find("America/Toronto"), std::string::npos) << e;
  EXPECT_NE(error_of({"Mon 10:00-11:00"}, "").find("no time zone"), std::string::npos);
  EXPECT_EQ(error_of({"Mon 10:00-11:00"}, "UTC"), "(accepted)");
  EXPECT_EQ(error_of({"Mon 10:00-11:00"}, "America/Toronto"), "(accepted)");
}

// 2026-01-12 is a Monday; January in Toronto is EST (UTC-5).
TEST(WindowSet, OvernightWindowBelongsToTheDayItStarts) {
  WindowSet s = toronto({"Mon-Fri 19:00-07:00"});
  EXPECT_FALSE(s.open_at(utc(2026, 1, 12, 11)));      // Mon 06:00: Sunday has no window
  EXPECT_FALSE(s.open_at(utc(2026, 1, 12, 23, 59)));  // Mon 18:59
  EXPECT_TRUE(s.open_at(utc(2026, 1, 13, 0)));        // Mon 19:00
  EXPECT_TRUE(s.open_at(utc(2026, 1, 13, 11, 59)));   // Tue 06:59, still Monday's window
  EXPECT_FALSE(s.open_at(utc(2026, 1, 13, 12)));      // Tue 07:00: end is exclusive
  EXPECT_TRUE(s.open_at(utc(2026, 1, 17, 11)));       // Sat 06:00: Friday's window
  EXPECT_FALSE(s.open_at(utc(2026, 1, 18, 1)));       // Sat 20:00: Saturday is not listed
  EXPECT_FALSE(s.open_at(utc(2026, 1, 18, 11)));      // Sun 06:00

  EXPECT_EQ(s.next_close(utc(2026, 1, 13, 3)), utc(2026, 1, 13, 12));
  EXPECT_EQ(s.next_open(utc(2026, 1, 13, 12)), utc(2026, 1, 14, 0));
  // Across the week end: from Saturday morning to Monday evening.
  EXPECT_EQ(s.next_open(utc(2026, 1, 17, 12)), utc(2026, 1, 20, 0));
  // Asked while open or closed, the answer is the instant itself.
  EXPECT_EQ(s.next_open(utc(2026, 1, 13, 3)), utc(2026, 1, 13, 3));
  EXPECT_EQ(s.next_close(utc(2026, 1, 18, 1)), utc(2026, 1, 18, 1));
}

TEST(WindowSet, SeveralWindowsMergeWhenTheyTouch) {
  // Weeknights, the whole weekend and Sunday night: open from Friday 19:00 to Monday 07:00
  // without a break, across the end of the week.
  WindowSet s =
      toronto({"Mon-Fri 19:00-07:00", "Sat,Sun 00:00-24:00", "Sun 19:00-07:00", "Wed 12:00-13:00"});
  EXPECT_TRUE(s.open_at(utc(2026, 1, 17, 17)));   // Sat 12:00
  EXPECT_TRUE(s.open_at(utc(2026, 1, 19, 5)));    // Mon 00:00, Sunday night's window
  EXPECT_FALSE(s.open_at(utc(2026, 1, 19, 12)));  // Mon 07:00
  EXPECT_EQ(s.next_close(utc(2026, 1, 17, 1)), utc(2026, 1, 19, 12));  // Fri 20:00 -> Mon 07:00
  EXPECT_EQ(s.next_open(utc(2026, 1, 19, 12)), utc(2026, 1, 20, 0));   // Mon 19:00
  // The Wednesday lunch window.
  EXPECT_EQ(s.next_open(utc(2026, 1, 14, 13)), utc(2026, 1, 14, 17));
  EXPECT_EQ(s.next_close(utc(2026, 1, 14, 17, 30)), utc(2026, 1, 14, 18));

  // Without the Sunday night window the weekend ends at Monday 00:00 (05:00 UTC).
  WindowSet no_sunday_night = toronto({"Mon-Fri 19:00-07:00", "Sat,Sun 00:00-24:00"});
  EXPECT_EQ(no_sunday_night.next_close(utc(2026, 1, 17, 1)), utc(2026, 1, 19, 5));
  EXPECT_FALSE(no_sunday_night.open_at(utc(2026, 1, 19, 5)));
}

TEST(WindowSet, NextOpenAndCloseAcrossTheWeekBoundary) {
  WindowSet s = toronto({"Mon 12:00-13:00", "Sun 22:00-02:00"});
  // Tuesday: the next opening is Sunday 22:00 (Mon 03:00 UTC), then it closes Monday 02:00.
  EXPECT_EQ(s.next_open(utc(2026, 1, 13, 15)), utc(2026, 1, 19, 3));
  EXPECT_EQ(s.next_close(utc(2026, 1, 19, 3)), utc(2026, 1, 19, 7));
  // After Monday lunch, the next opening is a week less a day later.
  EXPECT_EQ(s.next_open(utc(2026, 1, 19, 18)), utc(2026, 1, 26, 3));
}

TEST(WindowSet, AlwaysOpenNeverCloses) {
  WindowSet s = toronto({"Mon-Sun 00:00-24:00"});
  for (TimePoint t : {utc(2026, 1, 12, 0), utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)}) {
    EXPECT_TRUE(s.open_at(t));
    EXPECT_EQ(s.next_open(t), t);
    EXPECT_EQ(s.next_close(t), std::nullopt);
  }
  // Overnight windows that chain day after day are also open for good.
  WindowSet chained = toronto({"Mon-Sun 19:00-07:00", "Mon-Sun 07:00-19:00"});
  EXPECT_EQ(chained.next_close(utc(2026, 3, 8, 12)), std::nullopt);
}

// Spring forward: Sunday 2026-03-08, 02:00 EST becomes 03:00 EDT (07:00 UTC); 02:00-02:59 local
// does not exist that day.
TEST(WindowSet, SpringForwardStartInTheGapOpensWhenTheGapEnds) {
  WindowSet s = toronto({"Sun 02:30-04:00"});
  EXPECT_FALSE(s.open_at(utc(2026, 3, 8, 6, 59)));  // 01:59 EST
  EXPECT_TRUE(s.open_at(utc(2026, 3, 8, 7)));       // 03:00 EDT, the end of the gap
  EXPECT_EQ(s.next_open(utc(2026, 3, 8, 5)), utc(2026, 3, 8, 7));
  EXPECT_EQ(s.next_close(utc(2026, 3, 8, 7)), utc(2026, 3, 8, 8));  // 04:00 EDT
  // The next Sunday it is EDT throughout: 02:30 EDT = 06:30 UTC.
  EXPECT_EQ(s.next_open(utc(2026, 3, 8, 9)), utc(2026, 3, 15, 6, 30));
}

TEST(WindowSet, SpringForwardWindowInsideTheGapDoesNotOpenThatDay) {
  WindowSet s = toronto({"Mon-Sun 02:00-02:45"});
  EXPECT_EQ(s.next_open(utc(2026, 3, 7, 8)), utc(2026, 3, 9, 6));  // Monday 02:00 EDT
  for (int m = 0; m < 120; ++m)
    EXPECT_FALSE(s.open_at(utc(2026, 3, 8, 6) + std::chrono::minutes(m)));
}

TEST(WindowSet, SpringForwardOvernightWindowIsAnHourShorter) {
  // Saturday 19:00 EST (Sun 00:00 UTC) to Sunday 07:00 EDT (11:00 UTC): 11 hours.
  WindowSet s = toronto({"Sat 19:00-07:00"});
  EXPECT_EQ(s.next_open(utc(2026, 3, 7, 12)), utc(2026, 3, 8, 0));
  EXPECT_EQ(s.next_close(utc(2026, 3, 8, 0)), utc(2026, 3, 8, 11));
  // A whole-day window on that Sunday lasts 23 hours.
  WindowSet day = toronto({"Sun 00:00-24:00"});
  EXPECT_EQ(day.next_open(utc(2026, 3, 7, 12)), utc(2026, 3, 8, 5));
  EXPECT_EQ(day.next_close(utc(2026, 3, 8, 5)), utc(2026, 3, 9, 4));
}

// Fall back: Sunday 2026-11-01, 02:00 EDT becomes 01:00 EST (06:00 UTC); 01:00-01:59 local
// happens twice (05:00-05:59 UTC as EDT, 06:00-06:59 UTC as EST).
TEST(WindowSet, FallBackRepeatedHourOpensAtFirstAndClosesAtSecondOccurrence) {
  WindowSet s = toronto({"Sun 01:30-01:45"});
  EXPECT_EQ(s.next_open(utc(2026, 10, 31, 12)), utc(2026, 11, 1, 5, 30));     // 01:30 EDT
  EXPECT_EQ(s.next_close(utc(2026, 11, 1, 5, 30)), utc(2026, 11, 1, 6, 45));  // 01:45 EST
  EXPECT_TRUE(s.open_at(utc(2026, 11, 1, 6)));  // 01:00 EST, between the two: not cut in two

  WindowSet until = toronto({"Sun 00:00-01:30"});
  EXPECT_EQ(until.next_open(utc(2026, 10, 31, 12)), utc(2026, 11, 1, 4));     // 00:00 EDT
  EXPECT_EQ(until.next_close(utc(2026, 11, 1, 4)), utc(2026, 11, 1, 6, 30));  // 01:30 EST

  // After the change, a window from 02:00 is in EST: 07:00 UTC.
  WindowSet after = toronto({"Sun 02:00-03:00"});
  EXPECT_EQ(after.next_open(utc(2026, 11, 1, 0)), utc(2026, 11, 1, 7));
}

TEST(WindowSet, FallBackOvernightWindowIsAnHourLonger) {
  // Saturday 19:00 EDT (23:00 UTC) to Sunday 07:00 EST (12:00 UTC): 13 hours.
  WindowSet s = toronto({"Mon-Fri 19:00-07:00", "Sat 19:00-07:00"});
  EXPECT_EQ(s.next_open(utc(2026, 10, 31, 12)), utc(2026, 10, 31, 23));
  EXPECT_EQ(s.next_close(utc(2026, 10, 31, 23)), utc(2026, 11, 1, 12));
  EXPECT_TRUE(s.open_at(utc(2026, 11, 1, 11, 59)));
  EXPECT_FALSE(s.open_at(utc(2026, 11, 1, 12)));
  // Sunday has no window; Monday 19:00 EST is Tuesday 00:00 UTC.
  EXPECT_EQ(s.next_open(utc(2026, 11, 1, 12)), utc(2026, 11, 3, 0));
}

// Walks a FakeClock minute by minute through both DST weeks and checks that every change of
// open_at() happens exactly where next_open()/next_close() said it would.
TEST(WindowSet, PredictionsMatchAMinuteByMinuteWalkThroughBothDstChanges) {
  WindowSet s =
      toronto({"Mon-Fri 19:00-07:00", "Sat,Sun 00:00-24:00", "Sun 01:30-02:30", "Wed 12:00-13:00"});
  // Short windows in and around the changed hours, for plenty of transitions.
  WindowSet sparse = toronto({"Mon-Sun 01:15-02:45", "Sat,Sun 12:00-13:00", "Fri 23:00-01:30"});
  for (const WindowSet* set : {&s, &sparse}) {
    for (TimePoint start : {utc(2026, 3, 4, 0), utc(2026, 10, 28, 0)}) {
      FakeClock clock(start);
      bool open = set->open_at(clock.now());
      std::optional<TimePoint> predicted =
          open ? set->next_close(clock.now()) : set->next_open(clock.now());
      int changes = 0;
      for (int m = 0; m < 9 * 24 * 60; ++m) {
        clock.advance(1min);
        bool now_open = set->open_at(clock.now());
        if (now_open == open) continue;
        ++changes;
        ASSERT_TRUE(predicted.has_value()) << format_utc(clock.now());
        EXPECT_EQ(format_utc(*predicted), format_utc(clock.now()));
        open = now_open;
        predicted = open ? set->next_close(clock.now()) : set->next_open(clock.now());
      }
      EXPECT_GT(changes, 8);
    }
  }
}

TEST(OfficeHours, PicksTheCapAndSaysWhenItChanges) {
  auto hours = parse_windows({"Mon-Fri 08:00-17:00"}, "America/Toronto");
  ASSERT_TRUE(hours.ok());
  OfficeHours office(std::move(hours).value());
  const std::uint64_t in_office = 5'000'000, outside = 50'000'000;
  EXPECT_EQ(office.pick(utc(2026, 1, 13, 15), in_office, outside), in_office);  // Tue 10:00
  EXPECT_EQ(office.pick(utc(2026, 1, 13, 23), in_office, outside), outside);    // Tue 18:00
  EXPECT_EQ(office.next_change(utc(2026, 1, 13, 15)), utc(2026, 1, 13, 22));    // 17:00
  EXPECT_EQ(office.next_change(utc(2026, 1, 16, 23)), utc(2026, 1, 19, 13));    // Fri -> Mon 08:00
}

}  // namespace
}  // namespace dirgw::scheduler
