# Packaging (docs/packaging.md): what gets installed around the two binaries, and CPack's DEB
# settings. Included last by the top-level CMakeLists.txt, so every target exists here.
# The .deb is made by CPack; the .rpm by rpmbuild from packaging/rpm/dirgw.spec, which installs
# this same tree with `cmake --install`, so both packages get their files from these rules.
#
# Build both with: bash packaging/build-packages.sh BUILD_DIR   (make package)

include(GNUInstallDirs)

# --- Where systemd looks. systemd.pc knows (Debian 12: /lib/systemd/system; Fedora/RHEL:
# /usr/lib/systemd/system); the RPM spec passes its own macros.
pkg_get_variable(_dirgw_pc_unitdir systemd systemdsystemunitdir)
pkg_get_variable(_dirgw_pc_sysusersdir systemd sysusersdir)
pkg_get_variable(_dirgw_pc_tmpfilesdir systemd tmpfilesdir)
if(NOT _dirgw_pc_unitdir)
  if(EXISTS /etc/debian_version)
    set(_dirgw_pc_unitdir /lib/systemd/system)
  else()
    set(_dirgw_pc_unitdir /usr/lib/systemd/system)
  endif()
endif()
if(NOT _dirgw_pc_sysusersdir)
  set(_dirgw_pc_sysusersdir /usr/lib/sysusers.d)
endif()
if(NOT _dirgw_pc_tmpfilesdir)
  set(_dirgw_pc_tmpfilesdir /usr/lib/tmpfiles.d)
endif()
set(DIRGW_SYSTEMD_UNITDIR "${_dirgw_pc_unitdir}" CACHE PATH "Where dirgw.service is installed")
set(DIRGW_SYSUSERSDIR "${_dirgw_pc_sysusersdir}" CACHE PATH "Where sysusers.d/dirgw.conf is installed")
set(DIRGW_TMPFILESDIR "${_dirgw_pc_tmpfilesdir}" CACHE PATH "Where tmpfiles.d/dirgw.conf is installed")

# --- Man pages: the version is filled in, then gzipped (-n: no name or time stamp inside, so
# the bytes depend only on the text).
set(_dirgw_man_dir ${PROJECT_BINARY_DIR}/packaging/man)
set(_dirgw_man_pages)
foreach(_page dirgwd.8 dirgw.1)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/man/${_page} ${_dirgw_man_dir}/${_page} @ONLY)
  add_custom_command(
    OUTPUT ${_dirgw_man_dir}/${_page}.gz
    COMMAND gzip -9 -n -k -f ${_page}
    WORKING_DIRECTORY ${_dirgw_man_dir}
    DEPENDS ${_dirgw_man_dir}/${_page}
    COMMENT "Compressing man page ${_page}"
    VERBATIM)
  list(APPEND _dirgw_man_pages ${_dirgw_man_dir}/${_page}.gz)
endforeach()
add_custom_target(dirgw_man_pages ALL DEPENDS ${_dirgw_man_pages})

# --- Install rules (the binaries' own rules live beside their targets). The configuration is
# a conffile: /etc/dirgw/dirgw.yaml when the prefix is /usr.
install(FILES ${PROJECT_SOURCE_DIR}/config/dirgw.yaml
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/dirgw)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/dirgw.service DESTINATION ${DIRGW_SYSTEMD_UNITDIR})
install(FILES ${PROJECT_SOURCE_DIR}/systemd/dirgw.sysusers
        DESTINATION ${DIRGW_SYSUSERSDIR} RENAME dirgw.conf)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/dirgw.tmpfiles
        DESTINATION ${DIRGW_TMPFILESDIR} RENAME dirgw.conf)
install(FILES ${_dirgw_man_dir}/dirgwd.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${_dirgw_man_dir}/dirgw.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
# Operations: Prometheus alerting rules and a Grafana dashboard (docs/metrics.md), for the
# monitoring server to load from /usr/share/dirgw.
install(FILES ${PROJECT_SOURCE_DIR}/packaging/prometheus/dirgw-alerts.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/dirgw/prometheus)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/grafana/dirgw-dashboard.json
        DESTINATION ${CMAKE_INSTALL_DATADIR}/dirgw/grafana)
# The unit's Documentation= points at README.md here.
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/packaging.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# --- CPack. Overridable at cpack time: cpack -D CPACK_DEBIAN_PACKAGE_RELEASE=2 (what
# build-packages.sh --release does).
set(DIRGW_PACKAGE_MAINTAINER "dirgw maintainers <dirgw-maintainers@example.org>"
    CACHE STRING "The Maintainer: of the Debian package (and of its changelog entry)")

set(CPACK_PACKAGE_NAME dirgw)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "dirgw project")
set(CPACK_PACKAGE_CONTACT "${DIRGW_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "imaging gateway between a facility's PACS and its regional imaging repository")
set(CPACK_PACKAGE_DESCRIPTION
    "dirgwd receives DICOM studies from the local PACS and modalities\n\
(C-STORE), keeps every instance durably in a spool and a SQLite catalog\n\
before it answers, waits until a study is complete and forwards it to\n\
the regional repository over DICOMweb STOW-RS, retrying what was not\n\
accepted. dirgw is the command-line tool to check its configuration and\n\
see what the gateway is doing. It runs as the systemd service\n\
dirgw.service, as the system user dirgw.")
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES TRUE)
# tools/synth (dirgw-synth, made-up patients for tests and the demo) is a test tool and is not
# shipped: its install rule stays for developers, cpack-stage.cmake takes it out of the
# staging tree (and adds the Debian changelog).
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_LIST_DIR}/cpack-stage.cmake)
# The Debian copyright file (machine-readable; the project is Apache-2.0, see LICENSE), put in
# place by cpack-stage.cmake: Debian's policy names it usr/share/doc/dirgw/copyright.
set(CPACK_DIRGW_COPYRIGHT ${CMAKE_CURRENT_LIST_DIR}/debian/copyright)

set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The postinst makes the user with systemd-sysusers when systemd is installed, else with
# adduser; postrm's purge removes it with deluser. (deb-systemd-helper, which the scripts
# also use, is in init-system-helpers: essential, so not listed.)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles
    ${CMAKE_CURRENT_LIST_DIR}/debian/postinst
    ${CMAKE_CURRENT_LIST_DIR}/debian/prerm
    ${CMAKE_CURRENT_LIST_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

include(CPack)
