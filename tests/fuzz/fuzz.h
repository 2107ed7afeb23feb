/* What the fuzz targets share: a check that aborts (so libFuzzer keeps the
 * input) with the file, line and condition when a property does not hold. */
#ifndef WL_FUZZ_H
#define WL_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#endif
