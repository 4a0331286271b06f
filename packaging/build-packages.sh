#!/usr/bin/env bash
# Builds dirgw's packages from a release build tree (docs/packaging.md):
#   - the Debian package with CPack (DEB generator, dependencies computed by dpkg-shlibdeps);
#   - the RPM with rpmbuild from packaging/rpm/dirgw.spec, in its mode that packages an
#     already-built tree (on Fedora / RHEL the same spec builds from source: rpmbuild -ba).
# Both take their files from the project's CMake install rules, so they hold the same files.
#
# Usage: packaging/build-packages.sh BUILD_DIR [--release N] [--only deb|rpm] [--out DIR]
#                                    [--build-type T]
#   BUILD_DIR    configured here when new (RelWithDebInfo, tests off, prefix /usr); an
#                existing tree is reused (incremental build) unless it is a sanitizer or Debug
#                build, which must not be shipped. Its install prefix is set to /usr.
#   --build-type T  RelWithDebInfo (default for a new BUILD_DIR) or Release; given, it also
#                applies to a reused tree (CMake recompiles what the change needs). The packaged
#                binaries are stripped either way; RelWithDebInfo keeps the debug information
#                in the build tree for whoever debugs a crash of that build, and its -g makes
#                the compile 30-45 % longer (the package test uses Release).
#   --release N  the package release (default 1): 0.1.0-N. A higher N upgrades the same tree.
#   --only F     make only the deb or only the rpm.
#   --out DIR    where the packages go (default BUILD_DIR/packages); earlier dirgw packages
#                there are removed first.
# Environment: JOBS (parallel compile jobs, default nproc).
# Installs what it needs and lacks (rpm for rpmbuild, file for CPack) with apt-get.
set -euo pipefail

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RELEASE=1
ONLY=""
OUT=""
BUILD=""
BUILD_TYPE=RelWithDebInfo
BUILD_TYPE_GIVEN=""

die() { echo "build-packages.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --release) RELEASE="${2:?--release needs a number}"; shift 2 ;;
    --only) ONLY="${2:?--only needs deb or rpm}"; shift 2 ;;
    --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
    --build-type) BUILD_TYPE="${2:?--build-type needs RelWithDebInfo or Release}"
                  BUILD_TYPE_GIVEN=1; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$BUILD" ] || die "one build directory only"; BUILD="$1"; shift ;;
  esac
done
[ -n "$BUILD" ] || die "usage: build-packages.sh BUILD_DIR [--release N] [--only deb|rpm] [--out DIR] [--build-type T]"
[[ "$RELEASE" =~ ^[1-9][0-9]*$ ]] || die "--release must be a positive integer, not '$RELEASE'"
case "$ONLY" in ""|deb|rpm) ;; *) die "--only takes deb or rpm, not '$ONLY'" ;; esac
case "$BUILD_TYPE" in RelWithDebInfo|Release) ;;
  *) die "--build-type takes RelWithDebInfo or Release, not '$BUILD_TYPE'" ;; esac
mkdir -p "$BUILD"
BUILD="$(cd "$BUILD" && pwd)"
OUT="${OUT:-$BUILD/packages}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
JOBS="${JOBS:-$(nproc)}"

say() { echo "[package] $*"; }

# --- Tools. dpkg-deb / dpkg-shlibdeps come with build-essential (dpkg-dev).
need=()
command -v file >/dev/null || need+=(file)
if [ "$ONLY" != deb ]; then command -v rpmbuild >/dev/null || need+=(rpm); fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  say "installing Debian packages: ${need[*]}"
  # Try without refreshing the lists first; a fresh machine has none, so update then.
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"; then
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
  fi
fi

# --- Configure (or check) and build.
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  say "configuring $BUILD ($BUILD_TYPE, prefix /usr)"
  cmake -S "$SRC_DIR" -B "$BUILD" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DDIRGW_BUILD_TESTS=OFF \
        -DCMAKE_INSTALL_PREFIX=/usr
else
  home="$(cache_value CMAKE_HOME_DIRECTORY)"
  [ "$(cd "$home" 2>/dev/null && pwd)" = "$SRC_DIR" ] ||
    die "$BUILD was configured for the sources in $home, not $SRC_DIR"
  case "$(cache_value DIRGW_SANITIZE)" in
    ON|TRUE|1|YES|on|true) die "$BUILD is a sanitizer build: packages must not ship ASan/UBSan binaries" ;;
  esac
  case "$(cache_value CMAKE_BUILD_TYPE)" in
    RelWithDebInfo|Release|MinSizeRel) ;;
    *) die "$BUILD is a '$(cache_value CMAKE_BUILD_TYPE)' build; package a RelWithDebInfo or Release one" ;;
  esac
  if [ "$(cache_value CMAKE_INSTALL_PREFIX)" != /usr ]; then
    say "setting the install prefix of $BUILD to /usr (was $(cache_value CMAKE_INSTALL_PREFIX))"
  fi
  type_arg=()
  if [ -n "$BUILD_TYPE_GIVEN" ] && [ "$(cache_value CMAKE_BUILD_TYPE)" != "$BUILD_TYPE" ]; then
    say "switching $BUILD from $(cache_value CMAKE_BUILD_TYPE) to $BUILD_TYPE"
    type_arg=(-DCMAKE_BUILD_TYPE="$BUILD_TYPE")
  fi
  # Re-running cmake also picks up new install rules; it recompiles nothing by itself.
  cmake -S "$SRC_DIR" -B "$BUILD" -DCMAKE_INSTALL_PREFIX=/usr "${type_arg[@]}" >/dev/null
fi
say "building $BUILD with -j$JOBS"
cmake --build "$BUILD" -j"$JOBS"

VERSION="$(cache_value CMAKE_PROJECT_VERSION)"
[ -n "$VERSION" ] || die "no CMAKE_PROJECT_VERSION in $BUILD/CMakeCache.txt"
SPEC="$SRC_DIR/packaging/rpm/dirgw.spec"
SPEC_VERSION="$(sed -n 's/^%global dirgw_default_version[[:space:]]*//p' "$SPEC")"
[ "$SPEC_VERSION" = "$VERSION" ] ||
  die "packaging/rpm/dirgw.spec says version $SPEC_VERSION, CMakeLists.txt says $VERSION: make them equal (and add a %changelog entry)"

# OUT holds what this run makes: packages of an earlier version would be mistaken for it.
[ "$ONLY" = rpm ] || rm -f "$OUT"/dirgw_*.deb
[ "$ONLY" = deb ] || rm -f "$OUT"/dirgw-*.rpm
made=()

# --- Debian package (CPack).
if [ "$ONLY" != rpm ]; then
  say "making the Debian package ($VERSION-$RELEASE)"
  rm -rf "$BUILD/_cpack"
  (cd "$BUILD" && cpack -G DEB -B "$BUILD/_cpack" -D CPACK_DEBIAN_PACKAGE_RELEASE="$RELEASE")
  for f in "$BUILD"/_cpack/*.deb; do
    [ -f "$f" ] || die "CPack made no .deb"
    cp -f "$f" "$OUT/"
    made+=("$OUT/$(basename "$f")")
  done
fi

# --- RPM (rpmbuild with the spec, prebuilt mode). --nodeps: the BuildRequires are Debian
# packages here, which rpm's database does not know.
if [ "$ONLY" != deb ]; then
  say "making the RPM ($VERSION-$RELEASE)"
  top="$BUILD/_rpmbuild"
  rm -rf "$top"
  mkdir -p "$top"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS}
  rpmbuild -bb --nodeps \
    --define "_topdir $top" \
    --define "dirgw_prebuilt_dir $BUILD" \
    --define "dirgw_source_dir $SRC_DIR" \
    --define "dirgw_version $VERSION" \
    --define "dirgw_release $RELEASE" \
    "$SPEC"
  found=0
  for f in "$top"/RPMS/*/*.rpm; do
    [ -f "$f" ] || continue
    cp -f "$f" "$OUT/"
    made+=("$OUT/$(basename "$f")")
    found=1
  done
  [ "$found" = 1 ] || die "rpmbuild made no .rpm"
fi

say "packages in $OUT:"
for f in "${made[@]}"; do
  printf '  %s (%s bytes)\n' "$(basename "$f")" "$(stat -c %s "$f")"
done
