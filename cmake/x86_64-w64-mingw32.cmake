# Cross-compiling the addon for win32-x64 from Linux with Debian's MinGW-w64 (POSIX threads variant):
#   apt-get install g++-mingw-w64-x86-64-posix
#   npx cmake-js compile --arch x64 --out build-win32 --CDCMAKE_TOOLCHAIN_FILE=cmake/x86_64-w64-mingw32.cmake
# (`npm run prebuilds -- --target win32-x64` does this for you). The addon calls Node-API in node.exe through
# an import library that dlltool makes from the def file of the node-api-headers package (a devDependency);
# CMakeLists.txt links libstdc++, libgcc and winpthread statically, so the DLL imports only node.exe,
# KERNEL32 and msvcrt.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)

set(_prefix x86_64-w64-mingw32-)
set(CMAKE_C_COMPILER ${_prefix}gcc-posix)
set(CMAKE_CXX_COMPILER ${_prefix}g++-posix)
set(CMAKE_RC_COMPILER ${_prefix}windres)
set(CMAKE_AR ${_prefix}ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${_prefix}ranlib CACHE FILEPATH "")
set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)

# The import library for node.exe (cmake-js provides node.lib only when it runs on Windows).
execute_process(
  COMMAND node -p "require('node-api-headers').def_paths.node_api_def"
  WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/..
  OUTPUT_VARIABLE _napi_def
  OUTPUT_STRIP_TRAILING_WHITESPACE)
set(_napi_lib "${CMAKE_BINARY_DIR}/libnode_api.a")
if(NOT EXISTS "${_napi_lib}")
  execute_process(COMMAND ${_prefix}dlltool -d "${_napi_def}" -l "${_napi_lib}" RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${_prefix}dlltool could not make the Node-API import library from ${_napi_def}")
  endif()
endif()
set(CMAKE_CXX_STANDARD_LIBRARIES "\"${_napi_lib}\"" CACHE STRING "" FORCE)
