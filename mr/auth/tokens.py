"""API tokens: who may use the front end, for which workflows, in which role.

A token is ``mrt_<name>.<secret>``; only a SHA-256 digest of it is stored (``P/token/<name>``),
so the KV never holds one that works. The secret is 256 random bits, which is why one fast hash
is enough (a slow password hash protects guessable passwords; nothing here is guessable). The
name in the token finds the record; the digests are compared in constant time.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import secrets
import time

from mr import codec
from mr.kv.base import KV, Compare, KeyValue, Put
from mr.kv.mirror import PrefixMirror
from mr.models.errors import AlreadyExistsError, NotFoundError, ValidationError
from mr.models.keys import Keys
from mr.models.names import InvalidNameError, check_name, check_workflow_name
from mr.settings import Settings

#: What each role may do (mr.web.auth applies it): ``submit`` runs jobs and follows its own
#: requests, ``read`` follows any request, ``admin`` does everything.
ROLES = ("submit", "read", "admin")
TOKEN_PREFIX = "mrt_"
ADMIN_TOKEN_NAME = "admin"


@dataclasses.dataclass(frozen=True)
class Token:
    name: str
    role: str
    #: The workflows it may be used for; empty: every workflow.
    workflows: tuple[str, ...]
    digest: str
    created_at: float

    def covers(self, workflow: str | None) -> bool:
        """Whether it may be used for ``workflow`` (None: for what belongs to no workflow,
        which only a token of every workflow may see)."""
        if not self.workflows:
            return True
        return workflow is not None and workflow in self.workflows

    def describe(self) -> dict:
        """What may be shown of it: all but the digest."""
        return {"name": self.name, "role": self.role,
                "workflows": list(self.workflows) or ["*"], "created_at": self.created_at}

    def encode(self) -> bytes:
        return codec.encode({"role": self.role, "workflows": list(self.workflows),
                             "digest": self.digest, "created_at": self.created_at})

    @classmethod
    def decode(cls, name: str, value: bytes) -> "Token":
        fields = codec.decode(value)
        return cls(name, fields["role"], tuple(fields["workflows"]), fields["digest"],
                   fields["created_at"])


def auth_required(settings: Settings) -> bool:
    """``MR_AUTH``; ``auto`` spares only an embedded mr that nobody else can reach."""
    if settings.auth != "auto":
        return settings.auth == "on"
    return settings.kv_backend != "memory" or not _is_loopback(settings.http_host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def digest_of(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def name_in(presented: str) -> str | None:
    """The token's name, if ``presented`` has the shape of a token."""
    if not presented.startswith(TOKEN_PREFIX):
        return None
    name, dot, secret = presented[len(TOKEN_PREFIX):].partition(".")
    try:
        return check_name(name) if dot and secret else None
    except InvalidNameError:
        return None


class TokenStore:
    def __init__(self, kv: KV, keys: Keys):
        self._kv = kv
        self.prefix = keys.tokens()

    def create(self, name: str, role: str, workflows: tuple[str, ...] = ()) -> tuple[Token, str]:
        """Store a new token; returns it and its only plain copy, to hand to its user."""
        try:
            check_name(name, "token name")
            for workflow in workflows:
                check_workflow_name(workflow)
        except InvalidNameError as error:
            raise ValidationError(str(error)) from None
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        presented = f"{TOKEN_PREFIX}{name}.{secrets.token_urlsafe(32)}"
        token = Token(name, role, tuple(dict.fromkeys(workflows)), digest_of(presented),
                      time.time())
        key = self.prefix + name
        if not self._kv.txn([Compare(key, "create_revision", "==", 0)],
                            [Put(key, token.encode())]).succeeded:
            raise AlreadyExistsError(f"a token named {name!r} exists; revoke it first "
                                   f"(mr token revoke {name})")
        return token, presented

    def admin_token(self) -> str:
        """A new token ``admin`` of every workflow, for whoever started an mr (``mr cluster
        start``, an embedded ``mr run`` others can reach); one left by an earlier start is
        replaced."""
        with contextlib.suppress(NotFoundError):
            self.revoke(ADMIN_TOKEN_NAME)
        return self.create(ADMIN_TOKEN_NAME, "admin")[1]

    def list(self) -> list[Token]:
        return [Token.decode(kv.key[len(self.prefix):], kv.value)
                for page in self._kv.pages(self.prefix) for kv in page]

    def get(self, name: str) -> Token | None:
        stored = self._kv.get(self.prefix + name)
        return None if stored is None else Token.decode(name, stored.value)

    def revoke(self, name: str) -> None:
        if not self._kv.delete(self.prefix + name).deleted:
            raise NotFoundError(f"no token named {name!r}")


class TokenCache:
    """The tokens as a front end checks them: from memory, kept current by a watch, so that a
    request costs no KV read and a revoked token stops working within the watch's delay. A name
    not seen yet is looked up, so a token works as soon as ``mr token create`` returns."""

    def __init__(self, store: TokenStore, kv: KV):
        self._store = store
        self._tokens: dict[str, Token] = {}
        self._mirror = PrefixMirror(kv, store.prefix, self._put, self._delete,
                                    lambda: set(self._tokens), "the API tokens")

    def start(self) -> None:
        self._mirror.start()

    def stop(self) -> None:
        self._mirror.stop()

    def authenticate(self, presented: str) -> Token | None:
        """The token ``presented`` is, if it is one that is stored."""
        name = name_in(presented)
        if name is None:
            return None
        token = self._tokens.get(name)
        if token is None:
            token = self._store.get(name)
            if token is None:
                return None
        if not hmac.compare_digest(token.digest, digest_of(presented)):
            return None
        return token

    def _put(self, name: str, kv: KeyValue) -> None:
        self._tokens[name] = Token.decode(name, kv.value)

    def _delete(self, name: str) -> None:
        self._tokens.pop(name, None)
