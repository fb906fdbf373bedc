#!/bin/sh
# Fails if any C file differs from what .clang-format makes of it.
cd "$(dirname "$0")/.." || exit 2
bad=0
for file in $(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*'); do
    if ! clang-format --dry-run --Werror "$file" >/dev/null 2>&1; then
        echo "not formatted: $file (run: clang-format -i $file)"
        bad=1
    fi
done
exit $bad
