// The one translation unit that compiles stb_image (Debian's libstb-dev header): PNG, JPEG and BMP decoders only.
// Part of islkd_data_formats (format_*.cpp) so the image fuzzer links it without the engine.
#define STB_IMAGE_IMPLEMENTATION
// Zeroed allocations: on some corrupt JPEGs stb_image reads pixels it never wrote, so with malloc the same file
// decoded twice gave different pixels (found by fuzz_image); zeroed, a corrupt file decodes the same every time.
#include <cstdlib>
#define STBI_MALLOC(sz) std::calloc(1, sz)
#define STBI_REALLOC(p, newsz) std::realloc(p, newsz)
#define STBI_FREE(p) std::free(p)
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop
