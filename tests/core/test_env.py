import pytest
from django.core.exceptions import ImproperlyConfigured

from recast import env


def test_it_reads_an_integer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAST_X", "42")
    assert env.integer("RECAST_X", 1) == 42


def test_it_rejects_a_word_where_an_integer_is_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECAST_X", "many")
    with pytest.raises(
        ImproperlyConfigured, match="RECAST_X: expected an integer, got 'many'"
    ):
        env.integer("RECAST_X", 1)


def test_it_rejects_an_unknown_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAST_X", "perhaps")
    with pytest.raises(
        ImproperlyConfigured, match="RECAST_X: expected true or false, got 'perhaps'"
    ):
        env.boolean("RECAST_X", False)


def test_it_reads_a_secret_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("RECAST_X_FILE", str(secret))
    assert env.required("RECAST_X") == "s3cret"


def test_it_refuses_a_missing_required_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECAST_X", raising=False)
    with pytest.raises(ImproperlyConfigured, match="RECAST_X must be set"):
        env.required("RECAST_X")


def test_it_rejects_a_backend_it_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAST_BACKEND", "slurm")
    with pytest.raises(
        ImproperlyConfigured, match="RECAST_BACKEND: expected one of local, got 'slurm'"
    ):
        env.choice("RECAST_BACKEND", "local", ("local",))
