# Included by the top-level CMakeLists.txt before core/ when SDLENS_FUZZ is ON: the code under test
# needs libFuzzer's coverage instrumentation and the sanitizers, not only the fuzz targets.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "SDLENS_FUZZ needs clang (libFuzzer): configure with CC=clang CXX=clang++")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer -g)
add_link_options(-fsanitize=address,undefined)
