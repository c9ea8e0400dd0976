"""Secret redaction: keep credentials out of everything nbtoolkit records.

A :class:`Redactor` removes three kinds of secret from text and JSON-like data:

- credentials embedded in URLs (``https://user:password@host``, ``git+https://token@host``,
  ``ssh://user:pw@host``, ``?token=...`` query parameters);
- the *values* of environment variables whose *names* look secret (``AWS_SECRET_ACCESS_KEY``,
  ``GITHUB_TOKEN``, ``db_password``...), wherever those values appear;
- well-known token formats (GitHub, AWS access key ids, Slack, PyPI, private key blocks).

Everything is replaced by :data:`MASK`. Nothing here imports heavy modules.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from nbtoolkit import _json
from nbtoolkit._io import atomic_write_bytes
from nbtoolkit.config import DEFAULT_SECRET_PATTERNS

if TYPE_CHECKING:
    from nbtoolkit.config import Settings

__all__ = ["MASK", "MIN_SECRET_LENGTH", "LiveRedactor", "Redactor", "count_masks", "default_redactor", "public_json",
           "redact_notebook_file", "redacted_text_file"]

#: What a redacted secret is replaced with.
MASK = "***"

#: Environment values shorter than this are not scrubbed from text: masking ``"1"`` or
#: ``"true"`` everywhere would destroy the text without protecting anything.
MIN_SECRET_LENGTH = 6

# ``scheme://userinfo@`` -- greedy up to the last ``@`` of the authority, so a password that
# itself contains ``@`` is removed whole. The lookbehind lets a match start only where a run of
# scheme characters starts, which keeps the scan linear over long base64 images.
_SCHEME = r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://"
_URL_USERINFO = re.compile(rf"(?P<scheme>{_SCHEME})(?P<userinfo>[^\s/?#\"'<>`]*)@")
# ``?name=value`` / ``&name=value`` inside a URL.
_URL_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#\s\"'<>`]+)=(?P<value>[^&#\s\"'<>`]*)")
_URL = re.compile(rf"{_SCHEME}[^\s\"'<>`]+")

# High-confidence token formats, scrubbed even when they are not in the environment. Each
# starts with a literal, so the regex engine can skip ahead; the word boundary before it is
# checked in :func:`_mask_token` (a leading ``\b`` would make every position a candidate).
_TOKEN_FORMATS = tuple(
    re.compile(pattern, re.DOTALL)
    for pattern in (
        r"gh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub tokens
        r"github_pat_[A-Za-z0-9_]{22,}\b",  # GitHub fine-grained tokens
        r"(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
        r"xox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
        r"pypi-[A-Za-z0-9_-]{50,}",  # PyPI API tokens
        r"hf_[A-Za-z0-9]{20,}",  # Hugging Face tokens
        r"sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}",  # OpenAI / Anthropic / Stripe keys
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
    )
)


def _mask_token(match: re.Match[str]) -> str:
    """MASK for a token that starts at a word boundary; the text itself inside a longer word."""
    before = match.string[match.start() - 1] if match.start() else ""
    return match.group(0) if before.isalnum() or before == "_" else MASK


def _mask_tokens(text: str) -> str:
    for pattern in _TOKEN_FORMATS:
        text = pattern.sub(_mask_token, text)
    return text


# A user name alone carries no secret in this one conventional case (``ssh://git@github.com``).
_HARMLESS_USERINFO = frozenset({"git"})

# Fragments that name a secret only together with another word (``api_key``, ``APIKEY``,
# ``oauth_token``): a name that is just ``key`` or ``auth`` is a setting such as a flag's
# ``key = "user_id"``, not a credential.
_BARE_HARMLESS = frozenset({"KEY", "AUTH"})


def _url_password(value: str) -> str | None:
    """The password of a ``scheme://user:password@host`` value (a store URL), else None."""
    if "://" not in value or "@" not in value:
        return None
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _secret_items(
    patterns: tuple[str, ...], environ: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """Return the sorted (name, value) pairs of variables worth scrubbing from text.

    Besides the values of secret-looking variables, the password inside any variable holding a
    URL counts (``NBTOOLKIT_STORE=postgresql://user:pw@host/db``): a notebook that prints it
    alone leaks it as surely as the whole URL.
    """
    items = {
        (name, value)
        for name, value in environ.items()
        if len(value) >= MIN_SECRET_LENGTH and any(p in name.upper() for p in patterns)
    }
    for name, value in environ.items():
        password = _url_password(value)
        if password is not None and len(password) >= MIN_SECRET_LENGTH:
            items.add((f"{name} password", password))
    return tuple(sorted(items))


_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORDS = re.compile(r"[A-Za-z]+")


class Redactor:
    """Scrub credentials and known secret values from strings and JSON-like data.

    Args:
        patterns: name fragments that mark a variable or key as secret (matched
            case-insensitively anywhere in the name).
        environ: environment whose secret-looking variables' values are scrubbed
            (default ``os.environ``, read once here). Values shorter than
            :data:`MIN_SECRET_LENGTH` are ignored.
    """

    def __init__(
        self,
        patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._patterns: tuple[str, ...] = tuple(dict.fromkeys(p.upper() for p in patterns if p))
        env = os.environ if environ is None else environ
        self._values = frozenset(value for _, value in _secret_items(self._patterns, env))
        # The percent-encoded form turns up inside URLs; match it too. Longest first, so a
        # value containing another is removed whole.
        variants = {v for value in self._values for v in (value, quote(value, safe=""))}
        ordered = sorted(variants, key=lambda v: (-len(v), v))
        self._value_re: re.Pattern[str] | None = (
            re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
        )

    @property
    def patterns(self) -> tuple[str, ...]:
        """The upper-case name fragments this redactor treats as secret."""
        return self._patterns

    def is_secret_name(self, name: str) -> bool:
        """Return whether ``name`` looks like the name of a secret.

        Args:
            name: a variable, parameter or key name, e.g. ``AWS_SECRET_ACCESS_KEY`` or
                ``db_password``.

        Returns:
            True when a word of the name (split at ``_``, ``-``, ``.``, digits and camelCase
            humps) equals a pattern or ends with one (``APIKEY``, ``OAUTH``), so that
            ``GITHUB_TOKEN`` and ``dbPassword`` are secret while ``author`` and ``max_tokens``
            are not. A name that is only ``key`` or ``auth`` is a setting (a flag's
            ``key = "user_id"``), not a secret.
        """
        words = _WORDS.findall(_CAMEL.sub(r"\1_\2", name))
        if len(words) == 1 and words[0].upper() in _BARE_HARMLESS:
            return False
        # plurals count for long fragments (CREDENTIALS, SECRETS), not for TOKEN/KEY (max_tokens)
        return any(
            w.upper().endswith(p) or (len(p) >= 6 and w.upper().endswith(p + "S"))
            for w in words
            for p in self._patterns
        )

    def redact_url(self, url: str) -> str:
        """Remove credentials from every URL in ``url``.

        ``user:password@`` and ``token@`` are dropped from the authority of any
        ``scheme://`` URL (https, git+https, ssh, pip index URLs...), except the credential-free
        conventional ``git@``; values of secret-looking query parameters become :data:`MASK`.
        A whole command line (``pip install --index-url https://__token__:x@host/simple``) is
        handled too.

        Args:
            url: a URL, or any string holding URLs.

        Returns:
            The string with URL credentials removed.
        """
        if "://" not in url:
            return url
        url = _URL_USERINFO.sub(_drop_userinfo, url)
        if "=" in url:
            url = _URL.sub(self._mask_query, url)
        return url

    def redact_text(self, text: str) -> str:
        """Remove URL credentials, known secret values and well-known tokens from ``text``.

        Args:
            text: any text (a diff, a log line, a configuration value).

        Returns:
            The text with every secret replaced by :data:`MASK`.
        """
        text = self.redact_url(text)
        if self._value_re is not None:
            text = self._value_re.sub(MASK, text)
        return _mask_tokens(text)

    def redact_obj(self, obj: Any, *, mask_secret_keys: bool = True) -> Any:
        """Return a redacted deep copy of JSON-like data.

        Dicts, lists and tuples are copied; every string (keys included) goes through
        :meth:`redact_text`. Other values are returned unchanged.

        Args:
            obj: JSON-like data (dicts, lists, tuples, strings, numbers, None).
            mask_secret_keys: replace the (non-None) value under every secret-looking string
                key by :data:`MASK`. Turn off for data whose keys are names of things rather
                than settings (package names such as ``keyring``).

        Returns:
            The redacted copy.
        """
        return self._walk(obj, mask_secret_keys)

    def _walk(self, obj: Any, mask_keys: bool) -> Any:
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, (int, float)) or obj is None:  # the common leaves, skipped quickly
            return obj
        if isinstance(obj, Mapping):
            out: dict[Any, Any] = {}
            for key, value in obj.items():
                if (
                    mask_keys
                    and isinstance(key, str)
                    and value is not None
                    and self.is_secret_name(key)
                ):
                    value = MASK
                else:
                    value = self._walk(value, mask_keys)
                out[self.redact_text(key) if isinstance(key, str) else key] = value
            return out
        if isinstance(obj, list):
            return [self._walk(v, mask_keys) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self._walk(v, mask_keys) for v in obj)
        return obj

    def _mask_query(self, match: re.Match[str]) -> str:
        def mask(param: re.Match[str]) -> str:
            if param["value"] and self.is_secret_name(param["name"]):
                return f"{param['lead']}{param['name']}={MASK}"
            return param.group(0)

        return _URL_QUERY_PARAM.sub(mask, match.group(0))

    def __repr__(self) -> str:
        return f"Redactor(patterns={list(self._patterns)!r}, secret_values={len(self._values)})"


def _drop_userinfo(match: re.Match[str]) -> str:
    if match["userinfo"] in _HARMLESS_USERINFO:
        return match.group(0)
    return match["scheme"]


@functools.lru_cache(maxsize=16)
def _cached_redactor(patterns: tuple[str, ...], secrets: tuple[tuple[str, str], ...]) -> Redactor:
    return Redactor(patterns, environ=dict(secrets))


def default_redactor(
    settings: Settings | None = None, *, environ: Mapping[str, str] | None = None
) -> Redactor:
    """Return a redactor for the project's secret patterns and the current environment.

    The redactor is cached per (patterns, snapshot of the secret-looking variables), so calling
    this on every run is cheap and a changed secret is still picked up.

    Args:
        settings: project settings supplying ``secret_patterns`` (default: the built-in list).
        environ: environment to take secret values from (default ``os.environ``).

    Returns:
        A shared :class:`Redactor`; do not mutate it.
    """
    patterns = tuple(
        dict.fromkeys(
            p.upper() for p in (settings.secret_patterns if settings else DEFAULT_SECRET_PATTERNS)
        )
    )
    env = os.environ if environ is None else environ
    return _cached_redactor(patterns, _secret_items(patterns, env))


class LiveRedactor:
    """A redactor that follows the environment: each call uses the variables set right now.

    A store opened at the top of a notebook must still scrub a token the notebook exports into
    ``os.environ`` later; this looks the current :func:`default_redactor` up (a cached, cheap
    call) on every use.

    Args:
        settings: project settings supplying ``secret_patterns`` (default: the built-in list).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    def current(self) -> Redactor:
        """The :class:`Redactor` for the environment as it is now."""
        return default_redactor(self._settings)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The upper-case name fragments treated as secret."""
        return self.current().patterns

    def is_secret_name(self, name: str) -> bool:
        """See :meth:`Redactor.is_secret_name`."""
        return self.current().is_secret_name(name)

    def redact_url(self, url: str) -> str:
        """See :meth:`Redactor.redact_url`."""
        return self.current().redact_url(url)

    def redact_text(self, text: str) -> str:
        """See :meth:`Redactor.redact_text`."""
        return self.current().redact_text(text)

    def redact_obj(self, obj: Any, *, mask_secret_keys: bool = True) -> Any:
        """See :meth:`Redactor.redact_obj`."""
        return self.current().redact_obj(obj, mask_secret_keys=mask_secret_keys)

    def __repr__(self) -> str:
        return f"LiveRedactor({self.current()!r})"


def count_masks(text: str) -> int:
    """Return how many :data:`MASK` placeholders ``text`` holds (a count, never the values)."""
    return text.count(MASK)


def redact_notebook_file(path: str | Path, redactor: Redactor | LiveRedactor) -> bytes:
    """Scrub an executed notebook file in place (atomically) and return its new bytes.

    Every string of the notebook JSON (sources, outputs, metadata) goes through
    :meth:`Redactor.redact_obj`; keys are names of notebook fields, never masked.

    Args:
        path: the ``.ipynb`` file.
        redactor: the redactor to apply.

    Returns:
        The bytes now in the file.
    """
    raw = Path(path).read_bytes()
    notebook = json.loads(raw)
    clean = redactor.redact_obj(notebook, mask_secret_keys=False)
    if clean == notebook:
        return raw
    data = (json.dumps(clean, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write_bytes(path, data)
    return data


def public_json(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """JSON text for anything nbtoolkit prints or serves: secrets scrubbed, always valid JSON.

    The one output path of ``nbtk runs/show/env show --json`` and the REST API: every string
    goes through :func:`default_redactor` (values only -- keys such as ``max_tokens`` are names,
    and the store masked secret-named values on the way in), then
    :func:`nbtoolkit._json.dumps_strict` writes it (NaN/±inf as ``null`` plus a ``"nonfinite"``
    note).

    Args:
        value: JSON-like data.
        indent: pretty-print with this indent.
        sort_keys: sort object keys.

    Returns:
        The JSON text.
    """
    clean = default_redactor().redact_obj(value, mask_secret_keys=False)
    return _json.dumps_strict(clean, indent=indent, sort_keys=sort_keys)


#: Files logged as artifacts whose text is scrubbed before it is stored (by suffix).
TEXT_SUFFIXES = frozenset({
    ".txt", ".log", ".out", ".err", ".json", ".jsonl", ".ndjson", ".yaml", ".yml", ".toml", ".cfg",
    ".ini", ".conf", ".env", ".properties", ".md", ".rst", ".ipynb", ".py", ".sh", ".sql", ".html",
    ".htm", ".xml", ".csv", ".tsv", ".diff", ".patch",
})
#: Larger text files are stored as they are (scrubbing them would cost more than the write).
MAX_TEXT_FILE_BYTES = 16 * 1024 * 1024


def redacted_text_file(path: str | Path, redactor: Redactor | LiveRedactor) -> bytes | None:
    """Return the scrubbed bytes of a text file when scrubbing changed it, else ``None``.

    Only files with a :data:`TEXT_SUFFIXES` suffix, valid UTF-8 and at most
    :data:`MAX_TEXT_FILE_BYTES` are read; anything else (models, images, archives) is left to be
    copied as it is.

    Args:
        path: the file about to be stored.
        redactor: the redactor to apply.

    Returns:
        The UTF-8 bytes to store instead of the file, or ``None`` to store the file unchanged.
    """
    source = Path(path)
    if source.suffix.lower() not in TEXT_SUFFIXES or source.stat().st_size > MAX_TEXT_FILE_BYTES:
        return None
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None
    clean = redactor.redact_text(text)
    return None if clean == text else clean.encode("utf-8")
