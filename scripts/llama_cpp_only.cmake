# Injected by scripts/setup.sh right after llama.cpp's project() call (CMAKE_PROJECT_llama.cpp_INCLUDE).
# llama-cpp-python forces llama.cpp's "common" library on (a cache variable set with FORCE, so -D
# cannot turn it off), yet loads only libllama and libggml*: common (argument parsing, chat
# templates, JSON schemas) is compiled for nothing, and with its headers it is a large share of the
# build. A normal variable shadows the cache one in llama.cpp's own folder, where it is read.
set(LLAMA_BUILD_COMMON OFF)
