# Cross-compiling the addon for linux-arm64 (glibc) from another Linux host with Debian's cross toolchain:
#   apt-get install g++-aarch64-linux-gnu
#   npx cmake-js compile --arch arm64 --out build-arm64 --CDCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# (`npm run prebuild -- --arch arm64` does this for you). Set RMSNORM_CROSS_PREFIX for a toolchain whose
# tools are named otherwise (default aarch64-linux-gnu-) and RMSNORM_CROSS_SYSROOT for its target root.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(_prefix "$ENV{RMSNORM_CROSS_PREFIX}")
if(NOT _prefix)
  set(_prefix aarch64-linux-gnu-)
endif()
set(CMAKE_C_COMPILER ${_prefix}gcc)
set(CMAKE_CXX_COMPILER ${_prefix}g++)
set(CMAKE_AR ${_prefix}ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${_prefix}ranlib CACHE FILEPATH "")
set(CMAKE_STRIP ${_prefix}strip CACHE FILEPATH "")

set(_sysroot "$ENV{RMSNORM_CROSS_SYSROOT}")
if(NOT _sysroot)
  set(_sysroot /usr/aarch64-linux-gnu)
endif()
set(CMAKE_FIND_ROOT_PATH ${_sysroot})
# Programs (node, cmake helpers) come from the host; libraries and headers only from the target.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
