#!/usr/bin/env bash
# Prints the path of a Python 3.10 interpreter (Rasa 3.6 refuses 3.11), or explains what to install.
set -u
candidates=()
if command -v pyenv >/dev/null 2>&1; then
  wanted=$(cat "$(dirname "$0")/../.python-version" 2>/dev/null)
  [ -n "$wanted" ] && candidates+=("$(pyenv root)/versions/$wanted/bin/python")
fi
candidates+=(python3.10 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python /usr/bin/python3.10 /usr/local/bin/python3.10 python3)
for candidate in "${candidates[@]}"; do
  if command -v "$candidate" >/dev/null 2>&1 && \
     "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
    command -v "$candidate"
    exit 0
  fi
done
echo "No Python 3.10 found: install Python 3.10 (for example 'pyenv install 3.10.13') and run make again." >&2
exit 1
