# CPack pre-build script (CPACK_PRE_BUILD_SCRIPTS in cpack.cmake): runs on the staging tree
# after the install rules and before the package is made.
#  - Takes out what is built and installed for developers but not shipped: dirgw-synth, the
#    synthetic study generator (a test tool that makes DICOM of made-up patients; the demo and
#    the tests run it from the build tree).
#  - Debian only: adds /usr/share/doc/dirgw/changelog.Debian.gz, one entry for this build, and
#    /usr/share/doc/dirgw/copyright (packaging/debian/copyright, machine-readable, Apache-2.0).
if(NOT CPACK_TEMPORARY_INSTALL_DIRECTORY)
  message(FATAL_ERROR "cpack-stage.cmake: CPACK_TEMPORARY_INSTALL_DIRECTORY is not set")
endif()
set(_stage "${CPACK_TEMPORARY_INSTALL_DIRECTORY}")

file(GLOB_RECURSE _dirgw_unshipped LIST_DIRECTORIES false "${_stage}/*/bin/dirgw-synth")
foreach(_f IN LISTS _dirgw_unshipped)
  message(STATUS "Not packaged (test tool): ${_f}")
  file(REMOVE "${_f}")
endforeach()

if(CPACK_GENERATOR STREQUAL "DEB")
  set(_doc "${_stage}${CPACK_PACKAGING_INSTALL_PREFIX}/share/doc/${CPACK_PACKAGE_NAME}")
  if(NOT IS_DIRECTORY "${_doc}")
    message(FATAL_ERROR "cpack-stage.cmake: no ${_doc} in the staging tree")
  endif()
  # string(TIMESTAMP) honours SOURCE_DATE_EPOCH, for a reproducible package.
  string(TIMESTAMP _date "%a, %d %b %Y %H:%M:%S +0000" UTC)
  set(_version "${CPACK_PACKAGE_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")
  file(WRITE "${_doc}/changelog.Debian"
       "${CPACK_PACKAGE_NAME} (${_version}) unstable; urgency=medium\n\n"
       "  * dirgw ${CPACK_PACKAGE_VERSION}, packaged from the project's source tree with\n"
       "    packaging/build-packages.sh. Changes: the project's history.\n\n"
       " -- ${CPACK_PACKAGE_CONTACT}  ${_date}\n")
  if(NOT EXISTS "${CPACK_DIRGW_COPYRIGHT}")
    message(FATAL_ERROR "cpack-stage.cmake: no copyright file at '${CPACK_DIRGW_COPYRIGHT}'")
  endif()
  file(COPY_FILE "${CPACK_DIRGW_COPYRIGHT}" "${_doc}/copyright")
  execute_process(COMMAND gzip -9 -n -f changelog.Debian WORKING_DIRECTORY "${_doc}"
                  RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "cpack-stage.cmake: gzip of changelog.Debian failed (${_rc})")
  endif()
endif()
