#!/bin/sh
# Print a Python >= 3.12 interpreter: the first on PATH that runs, else one installed by pyenv.
for candidate in python3 python3.14 python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        command -v "$candidate"
        exit 0
    fi
done
echo "bayes_msem needs Python >= 3.12; none was found on PATH or under ~/.pyenv/versions" >&2
exit 1
