"""Unit tests for nbtoolkit.redact: URL credentials, known secret values, nested data."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbtoolkit.config import Settings
from nbtoolkit.redact import MASK, Redactor, default_redactor

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(
        environ={
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "db_password": "hunter2hunter2",
            "GITHUB_TOKEN": "short",  # below the minimum length: not scrubbed from text
            "HOME": "/home/alice",  # not secret-looking
        }
    )


@pytest.mark.parametrize(
    "name", ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "db_password", "api_key", "MyAuthHeader"]
)
def test_secret_names_match_case_insensitively(redactor: Redactor, name: str) -> None:
    assert redactor.is_secret_name(name)


@pytest.mark.parametrize("name", ["HOME", "PATH", "LANG", "CUDA_VISIBLE_DEVICES", "learning_rate"])
def test_ordinary_names_are_not_secret(redactor: Redactor, name: str) -> None:
    assert not redactor.is_secret_name(name)


def test_custom_patterns_replace_the_defaults() -> None:
    r = Redactor(["vault"], environ={})
    assert r.is_secret_name("MY_VAULT_ID")
    assert not r.is_secret_name("GITHUB_TOKEN")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://user:ghp_SECRET123token@github.com/org/repo.git",
            "https://github.com/org/repo.git",
        ),
        ("https://ghp_SECRET123token@github.com/org/repo.git", "https://github.com/org/repo.git"),
        (
            "git+https://user:s3cr3tpass@example.com/fake.git@v1.0#egg=fake",
            "git+https://example.com/fake.git@v1.0#egg=fake",
        ),
        (
            "ssh://deploy:pw123456@host.example:2222/srv/repo.git",
            "ssh://host.example:2222/srv/repo.git",
        ),
        ("ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("https://user:p@ss@host.example/x", "https://host.example/x"),
        (
            "https://host.example/simple?token=abc123&page=2",
            f"https://host.example/simple?token={MASK}&page=2",
        ),
        ("https://pypi.org/simple/numpy/", "https://pypi.org/simple/numpy/"),
        (
            "pip install --index-url https://__token__:pypi-abc@host.example/simple nbtoolkit",
            "pip install --index-url https://host.example/simple nbtoolkit",
        ),
    ],
)
def test_redact_url_strips_credentials(redactor: Redactor, url: str, expected: str) -> None:
    assert redactor.redact_url(url) == expected


def test_redact_text_strips_urls_and_known_values(redactor: Redactor) -> None:
    text = (
        "cloning https://bob:Sup3rS3cret@gitlab.example/team/repo.git\n"
        f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n"
        "url-encoded: wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYSECRETKEY\n"
        "dsn = postgresql://app:hunter2hunter2@db:5432/prod\n"
        "home is /home/alice, token is short\n"
    )
    out = redactor.redact_text(text)
    for secret in ("Sup3rS3cret", "bob:", AWS_SECRET, "wJalrXUtnFEMI", "hunter2hunter2"):
        assert secret not in out
    assert "https://gitlab.example/team/repo.git" in out
    assert f"AWS_SECRET_ACCESS_KEY={MASK}" in out
    assert "postgresql://db:5432/prod" in out
    # short values and non-secret variables are left alone
    assert "home is /home/alice, token is short" in out


def test_redact_text_masks_well_known_token_formats() -> None:
    r = Redactor(environ={})
    token = "ghp_" + "a1B2" * 9
    key_id = "AKIAIOSFODNN7EXAMPLE"
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
    out = r.redact_text(f"token={token} id={key_id}\n{pem}\n")
    assert token not in out and key_id not in out and "MIIEow" not in out
    assert out.count(MASK) == 3


def test_redact_obj_walks_nested_data_and_masks_secret_keys(redactor: Redactor) -> None:
    data = {
        "remote": "https://u:pw@host.example/r.git",
        "nested": [{"api_key": "k-123456", "note": f"uses {AWS_SECRET}"}, ("x", "hunter2hunter2")],
        "Password": 12345,
        "token": None,
        "count": 3,
    }
    out = redactor.redact_obj(data)
    assert out == {
        "remote": "https://host.example/r.git",
        "nested": [{"api_key": MASK, "note": f"uses {MASK}"}, ("x", MASK)],
        "Password": MASK,
        "token": None,
        "count": 3,
    }
    assert data["nested"][0]["api_key"] == "k-123456"  # the input is not modified


def test_redact_obj_can_keep_values_under_secret_looking_keys(redactor: Redactor) -> None:
    data = {"packages": {"keyring": {"version": "25.0"}, "google-auth": {"version": "2.0"}}}
    assert redactor.redact_obj(data, mask_secret_keys=False) == data
    assert redactor.redact_obj(data)["packages"]["google-auth"] == MASK


def test_secret_names_match_words_not_substrings(redactor: Redactor) -> None:
    for name in ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "db_password", "dbPassword", "apikey", "OAUTH_ID", "MY_CREDENTIALS"):
        assert redactor.is_secret_name(name), name
    for name in ("author", "max_tokens", "keyring", "JPY_SESSION_NAME", "keyword", "learning_rate"):
        assert not redactor.is_secret_name(name), name


def test_default_redactor_is_cached_and_follows_the_environment() -> None:
    settings = Settings(root=Path("."), store_path=Path(".nbtoolkit"))
    env = {"SERVICE_TOKEN": "tok-aaaaaaaa"}
    first = default_redactor(settings, environ=env)
    assert default_redactor(settings, environ=dict(env)) is first
    assert first.redact_text("x tok-aaaaaaaa") == f"x {MASK}"

    changed = default_redactor(settings, environ={"SERVICE_TOKEN": "tok-bbbbbbbb"})
    assert changed is not first
    assert changed.redact_text("tok-aaaaaaaa tok-bbbbbbbb") == f"tok-aaaaaaaa {MASK}"


def test_the_password_of_a_url_in_the_environment_is_scrubbed_on_its_own() -> None:
    env = {"NBTOOLKIT_STORE": "postgresql+psycopg://nbtk:s3cr%40t-pass@db.internal:5432/exp", "SHORT": "x://u:pw@h"}
    r = default_redactor(environ=env)
    out = r.redact_text("password s3cr@t-pass, encoded s3cr%40t-pass, url " + env["NBTOOLKIT_STORE"] + " pw")
    assert "s3cr" not in out and out.count(MASK) == 2
    assert "postgresql+psycopg://db.internal:5432/exp" in out
    assert r.redact_text("pw stays") == "pw stays"  # a password shorter than 6 characters is not hunted


def test_hugging_face_and_openai_style_keys_are_masked_without_the_environment() -> None:
    r = Redactor(environ={})
    hf, sk, proj = "hf_" + "Ab1" * 10, "sk-" + "Zz9" * 10, "sk-proj-" + "Q1w" * 10
    out = r.redact_text(f"{hf} {sk} {proj} sk-learn task-abcdefghijklmnopqrstuvwxyz xoxb-1234567890-abc")
    assert hf not in out and sk not in out and proj not in out and "xoxb-1234567890" not in out
    assert "sk-learn" in out and "task-abcdefghijklmnopqrstuvwxyz" in out and out.count(MASK) == 4


def test_a_bare_key_or_auth_setting_is_not_a_secret(redactor: Redactor) -> None:
    flag = {"new_ranker": {"rollout": 25, "key": "user_id"}, "routing": {"Key": "user_id", "auth": "basic"}}
    assert redactor.redact_obj(flag) == flag
    assert redactor.redact_obj({"api_key": "user_id", "private_key": "x"}) == {"api_key": MASK, "private_key": MASK}


def test_live_redactor_scrubs_a_secret_exported_after_it_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbtoolkit.redact import LiveRedactor

    live = LiveRedactor()
    monkeypatch.delenv("LATE_API_TOKEN", raising=False)
    assert live.redact_text("value latevalue-123456") == "value latevalue-123456"
    monkeypatch.setenv("LATE_API_TOKEN", "latevalue-123456")
    assert live.redact_text("value latevalue-123456") == f"value {MASK}"
    assert live.redact_obj({"note": "latevalue-123456"}) == {"note": MASK}


def test_redact_notebook_file_rewrites_only_when_something_is_masked(tmp_path: Path) -> None:
    import json

    from nbtoolkit.redact import redact_notebook_file

    r = Redactor(environ={"HF_TOKEN": "hf-value-123456"})
    nb = {"cells": [{"cell_type": "code", "source": "print(1)", "metadata": {},
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": "tok hf-value-123456\n"}]}],
          "metadata": {"key": "user_id"}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "out.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    data = redact_notebook_file(path, r)
    assert data == path.read_bytes() and b"hf-value-123456" not in data
    clean = json.loads(data)
    assert clean["cells"][0]["outputs"][0]["text"] == f"tok {MASK}\n" and clean["metadata"] == {"key": "user_id"}
    before = path.stat().st_mtime_ns
    assert redact_notebook_file(path, r) == data and path.stat().st_mtime_ns == before  # already clean: untouched


def test_public_json_is_redacted_and_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from nbtoolkit.redact import public_json

    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-98765")
    text = public_json({"note": "key wandb-secret-98765", "max_tokens": 5, "key": "user_id", "m": float("nan")})
    assert json.loads(text) == {"note": f"key {MASK}", "max_tokens": 5, "key": "user_id", "m": None,
                                "nonfinite": {"/m": "NaN"}}
