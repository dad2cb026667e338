# Which LibTorch the build uses. Two sources are supported:
#   debian: libtorch-dev 1.13, CPU only, found in the system prefix;
#   pypi:   the LibTorch inside PyPI's torch 2.x wheel (CUDA-enabled), installed into a virtual
#           environment by `packaging/install-deps.sh --torch pypi`.
# auto takes the virtual environment when it exists, so that set-up needs no CMAKE_PREFIX_PATH.
set(SDLENS_TORCH "auto" CACHE STRING "LibTorch source: auto, debian or pypi")
set_property(CACHE SDLENS_TORCH PROPERTY STRINGS auto debian pypi)
set(SDLENS_TORCH_VENV "${CMAKE_SOURCE_DIR}/.torch-venv" CACHE PATH
    "Virtual environment holding PyPI's torch (packaging/install-deps.sh --torch pypi)")

set(_sdlens_venv_python "${SDLENS_TORCH_VENV}/bin/python3")
if(SDLENS_TORCH STREQUAL "auto")
  # A configured build directory keeps the LibTorch it was made with.
  if(Torch_DIR)
    cmake_path(IS_PREFIX SDLENS_TORCH_VENV "${Torch_DIR}" NORMALIZE _sdlens_cached_venv)
    if(_sdlens_cached_venv)
      set(SDLENS_TORCH_SOURCE pypi)
    else()
      set(SDLENS_TORCH_SOURCE debian)
    endif()
  elseif(EXISTS "${_sdlens_venv_python}")
    set(SDLENS_TORCH_SOURCE pypi)
  else()
    set(SDLENS_TORCH_SOURCE debian)
  endif()
elseif(SDLENS_TORCH STREQUAL "debian" OR SDLENS_TORCH STREQUAL "pypi")
  set(SDLENS_TORCH_SOURCE ${SDLENS_TORCH})
else()
  message(FATAL_ERROR "SDLENS_TORCH is auto, debian or pypi, not '${SDLENS_TORCH}'")
endif()

if(SDLENS_TORCH_SOURCE STREQUAL "pypi")
  if(NOT EXISTS "${_sdlens_venv_python}")
    message(FATAL_ERROR "SDLENS_TORCH=pypi but ${_sdlens_venv_python} does not exist: run "
                        "'packaging/install-deps.sh --torch pypi' or set SDLENS_TORCH_VENV")
  endif()
  execute_process(COMMAND "${_sdlens_venv_python}" -c "import torch;print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE _sdlens_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_VARIABLE _sdlens_torch_err RESULT_VARIABLE _sdlens_torch_rc)
  if(NOT _sdlens_torch_rc EQUAL 0)
    message(FATAL_ERROR "${_sdlens_venv_python} cannot import torch: ${_sdlens_torch_err}")
  endif()
  # The package dir for find_package, and the wheel's torch/ itself, whose lib/ must win over a
  # Debian libtorch.so in the system paths when TorchConfig looks for the library by name.
  get_filename_component(_sdlens_torch_root "${_sdlens_torch_prefix}/../.." ABSOLUTE)
  list(PREPEND CMAKE_PREFIX_PATH "${_sdlens_torch_prefix}" "${_sdlens_torch_root}")
  # The wheel's libtorch_cuda.so has no RUNPATH: Python's torch preloads NVIDIA's runtime wheels
  # (cuDNN, cuBLAS, NCCL, ...) before loading it. A C++ program must name them itself, ahead of the
  # toolkit's older copies (/usr/local/cuda's NCCL lacks symbols it needs), and as DT_RPATH, which
  # unlike DT_RUNPATH also serves the libraries' own dependencies.
  file(GLOB _sdlens_wheel_libdirs LIST_DIRECTORIES true "${_sdlens_torch_root}/../nvidia/*/lib")
  add_link_options("LINKER:--disable-new-dtags")
  foreach(dir IN LISTS _sdlens_wheel_libdirs)
    get_filename_component(dir "${dir}" ABSOLUTE)
    add_link_options("LINKER:-rpath,${dir}")
  endforeach()
  # The wheel's LibTorch is built with CUDA, and its CMake package looks for a CUDA toolkit.
  if(NOT DEFINED CUDAToolkit_ROOT AND NOT DEFINED ENV{CUDAToolkit_ROOT} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
endif()
find_package(Torch REQUIRED)
cmake_path(IS_PREFIX SDLENS_TORCH_VENV "${TORCH_LIBRARY}" NORMALIZE _sdlens_lib_in_venv)
if(SDLENS_TORCH_SOURCE STREQUAL "pypi")
  cmake_path(IS_PREFIX _sdlens_torch_root "${TORCH_LIBRARY}" NORMALIZE _sdlens_lib_in_wheel)
endif()
if(SDLENS_TORCH_SOURCE STREQUAL "pypi" AND NOT _sdlens_lib_in_wheel)
  message(FATAL_ERROR "SDLENS_TORCH=pypi but this build directory holds ${TORCH_LIBRARY}: "
                      "configure a new build directory, or delete ${CMAKE_BINARY_DIR}/CMakeCache.txt")
elseif(SDLENS_TORCH_SOURCE STREQUAL "debian" AND _sdlens_lib_in_venv)
  message(FATAL_ERROR "SDLENS_TORCH=debian but this build directory holds ${TORCH_LIBRARY}: "
                      "configure a new build directory, or delete ${CMAKE_BINARY_DIR}/CMakeCache.txt")
endif()
message(STATUS "LibTorch ${Torch_VERSION} (${SDLENS_TORCH_SOURCE}): ${TORCH_LIBRARY}")

# LibTorch and Qt exchange std::string and friends with our code, so all three must use the same
# C++ ABI. Debian's Qt uses the C++11 ABI; PyPI wheels before torch 2.7 did not.
function(sdlens_check_torch_abi torch_cxx_flags with_qt)
  if(with_qt AND "${torch_cxx_flags}" MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
    message(FATAL_ERROR
      "This LibTorch is built with the pre-C++11 ABI (TORCH_CXX_FLAGS: ${torch_cxx_flags}) and Debian's "
      "Qt 6 with the C++11 ABI: the GUI and tests cannot link with both. Use a LibTorch built with "
      "_GLIBCXX_USE_CXX11_ABI=1 (Debian's libtorch-dev, or PyPI's torch 2.7 or later), or configure "
      "with -DSDLENS_WITH_QT=OFF to build core/ and sdlens-cli only.")
  endif()
endfunction()
