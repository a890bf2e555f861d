/*
 * The patch author's include directory: `src/klp/include/`, searched after the kernel's own include
 * directories when a patched unit compiles, so that `#include "kpatch-macros.h"`, `"kpatch-syscall.h"`
 * and `<linux/livepatch_helpers.h>` (on kernels that do not ship one) find Suture's headers. The
 * headers are read at build time from the checkout or the package (`src/klp/include/` ships with it).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../diagnostic.js';

/** The headers a patch may include, by the name it includes them with. */
export const AUTHOR_HEADERS = ['kpatch-macros.h', 'kpatch-syscall.h', 'linux/livepatch_helpers.h'] as const;

/** The directory holding the author headers (KLP-NO-AUTHOR-HEADERS when it is missing). */
export function authorIncludeDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/klp/ → src/klp/include; a run from src/ (tests through a loader) has it beside the file
  for (const d of [join(here, '..', '..', 'src', 'klp', 'include'), join(here, 'include')])
    if (existsSync(join(d, 'suture', 'author.h'))) return d;
  return fail('KLP-NO-AUTHOR-HEADERS', `the patch author's headers are not beside ${here}`, {
    why: 'kpatch-macros.h, kpatch-syscall.h and linux/livepatch_helpers.h live in src/klp/include/, read at build time',
    hint: 'run suture from a checkout that has src/ next to dist/, or from the package (it ships src/klp/include/)',
  });
}
