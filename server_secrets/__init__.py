"""Secrets the servers share: read from the environment, or generated once into var/ for one machine."""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRETS_DIR = REPO_ROOT / "var"


def load_secret_key(path: Path) -> str:
    """The key in ``path``, generated there (mode 600) the first time.

    Written to a private temporary file and linked into place, so that several processes
    starting at once all end up with the same complete key.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        # mkstemp creates the file with mode 600 whatever the umask.
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32))
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # Another process got there first; use its key.
        finally:
            os.unlink(temporary)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); setting it to 600", path, mode)
        os.chmod(path, 0o600)
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it to have a new key generated")
    return key


def shared_secret(env_name: str, file_name: str) -> str:
    """``env_name`` when set (several servers must share it), else a key kept in var/."""
    return os.environ.get(env_name, "").strip() or load_secret_key(SECRETS_DIR / file_name)
