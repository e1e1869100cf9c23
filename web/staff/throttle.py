"""Sign-in throttling per client address, checked before any password is.

Counted with ``limits`` (moving windows) in ``RATE_LIMIT_STORAGE_URI``: memory for one process
(`make run`), Redis (``redis://...``) so that several web servers and workers count together.
A post stopped here never reaches authenticate(), so it never counts toward an account's
lockout: an attacker's address runs out of attempts long before it could keep anyone else out.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from appointments.staff_accounts import normalize_address

logger = logging.getLogger(__name__)

# A member of staff mistypes a few times; a guesser tries hundreds. Several colleagues may share
# the clinic's one address, hence the roomier hourly budget.
DEFAULT_SIGN_IN_LIMITS = "10/minute;60/hour"
DEFAULT_STORAGE_URI = "memory://"
EXTENSION_KEY = "staff_sign_in_throttle"
NAMESPACE = "staff-sign-in"


def client_address() -> str:
    """The client's address; behind a proxy, right only once PROXY_COUNT is set (web/app.py)."""
    return normalize_address(request.remote_addr)


@dataclass(frozen=True)
class SignInThrottle:
    """Counts sign-in posts per client address against every one of ``limits``."""

    limits: tuple[RateLimitItem, ...]
    # Held here because the limiter only keeps a weak reference to its storage.
    storage: Storage
    limiter: MovingWindowRateLimiter

    @classmethod
    def create(cls, storage_uri: str, limits: str) -> SignInThrottle:
        storage = storage_from_string(storage_uri)
        return cls(tuple(parse_many(limits)), storage, MovingWindowRateLimiter(storage))

    def wait_seconds(self, address: str) -> int:
        """0 once this attempt is counted, else how long ``address`` must wait (nothing counted)."""
        try:
            spent = [
                item for item in self.limits if not self.limiter.test(item, NAMESPACE, address)
            ]
            if not spent:
                for item in self.limits:
                    self.limiter.hit(item, NAMESPACE, address)
                return 0
            reset_at = max(
                self.limiter.get_window_stats(item, NAMESPACE, address)[0] for item in spent
            )
        except (RedisError, OSError) as error:
            # Staff must still be able to sign in; the per-address lockout in the database holds.
            logger.warning(
                "Sign-in throttle storage unreachable (%s): not throttling", type(error).__name__
            )
            return 0
        return max(1, int(reset_at - time.time()))


def configure_sign_in_throttle(app: Flask) -> None:
    """One throttle per app, from its settings; settings already in ``app.config`` win."""
    config = app.config
    config.setdefault(
        "RATE_LIMIT_STORAGE_URI",
        os.environ.get("RATE_LIMIT_STORAGE_URI", "").strip() or DEFAULT_STORAGE_URI,
    )
    config.setdefault("STAFF_SIGN_IN_LIMITS", DEFAULT_SIGN_IN_LIMITS)
    app.extensions[EXTENSION_KEY] = SignInThrottle.create(
        config["RATE_LIMIT_STORAGE_URI"], config["STAFF_SIGN_IN_LIMITS"]
    )


def sign_in_wait_seconds() -> int:
    """Counts this sign-in post: 0 if it may go on, else how long its address must wait."""
    return current_app.extensions[EXTENSION_KEY].wait_seconds(client_address())
