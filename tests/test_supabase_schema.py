"""The Supabase schema in a real PostgreSQL: migrations, rows, roles and row level security."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pg import (  # noqa: F401  (pytest fixtures are registered by import)
    KEEP_TOKENS_3_DEMO_PARAMS,
    apply_migrations,
    pg_database_fixture,
    postgres_fixture,
    postgrest_upsert,
    sample_metrics,
)
from watcher.commands.review import review_row
from watcher.publish.supabase import epoch_row, migration_files, run_row

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"


def _columns(conn: psycopg.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema='public' AND table_name=%s", (table,),
    ).fetchall()
    return dict(rows)


def _upsert(conn: psycopg.Connection, table: str, rows: list[dict[str, Any]], conflict: str) -> int:
    return postgrest_upsert(conn, table, json.dumps(rows), conflict)


def test_migrations_apply_on_empty_and_again_on_migrated_database(pg_database: str) -> None:
    files = [p.name for p in migration_files()]
    assert files == sorted(files) and len(files) >= 2
    assert apply_migrations(pg_database) == files
    with psycopg.connect(pg_database) as conn:
        _upsert(conn, "training_runs", [run_row(RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)], "run_name")
    assert apply_migrations(pg_database) == files  # second time: no error, data kept
    with psycopg.connect(pg_database) as conn:
        runs = _columns(conn, "training_runs")
        epochs = _columns(conn, "epoch_evaluations")
        assert conn.execute("SELECT count(*) FROM training_runs").fetchone() == (1,)
        rls = dict(conn.execute(
            "SELECT relname, relrowsecurity FROM pg_class WHERE relname IN "
            "('training_runs', 'epoch_evaluations', 'epoch_reviews')").fetchall())
        roles = {r[0]: r[1] for r in conn.execute(
            "SELECT rolname, rolbypassrls FROM pg_roles WHERE rolname IN "
            "('anon', 'authenticated', 'service_role')")}
        policies = {r[0] for r in conn.execute("SELECT policyname FROM pg_policies")}
    assert {"run_name", "status", "architecture", "hyperparameters", "data", "augmentation",
            "verdict", "best_epoch", "created_at", "updated_at"} <= runs.keys()
    assert runs["architecture"] == "jsonb"
    assert {"run_name", "epoch", "checkpoint_sha256", "visual_score", "style_score",
            "prompt_score", "color_accuracy", "style_quality", "background_hex",
            "background_match", "unique_colors", "issues", "observations", "decision",
            "metrics", "git_commit", "created_at", "updated_at"} <= epochs.keys()
    assert epochs["issues"] == "ARRAY" and epochs["metrics"] == "jsonb"
    assert rls == {"training_runs": True, "epoch_evaluations": True, "epoch_reviews": True}
    assert roles == {"anon": False, "authenticated": False, "service_role": True}
    assert len(policies) == 6


def test_rows_from_the_daemon_are_accepted_and_upserts_never_duplicate(pg_database: str) -> None:
    apply_migrations(pg_database)
    with psycopg.connect(pg_database) as conn:
        _upsert(conn, "training_runs", [run_row(RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)], "run_name")
        first = epoch_row(RUN, 4, sample_metrics(RUN, 4), None, "continue")
        _upsert(conn, "epoch_evaluations", [first], "run_name,epoch")
        created = conn.execute("SELECT created_at, updated_at FROM epoch_evaluations").fetchone()
        # The same epoch again with a commit and a stop decision: updated in place.
        again = epoch_row(RUN, 4, sample_metrics(RUN, 4), "0123abcd" * 5, "stop")
        _upsert(conn, "epoch_evaluations", [again], "run_name,epoch")
        _upsert(conn, "training_runs",
                [run_row(RUN, "stopped", KEEP_TOKENS_3_DEMO_PARAMS, verdict="hypothesis invalid", best_epoch=3)],
                "run_name")
        rows = conn.execute(
            "SELECT epoch, decision, git_commit, issues, background_hex, background_match, "
            "visual_score, observations, metrics->'aggregate'->>'n_images', created_at, updated_at "
            "FROM epoch_evaluations").fetchall()
        run = conn.execute(
            "SELECT status, verdict, best_epoch, architecture->>'network_dim', "
            "data->>'keep_tokens', extra_params FROM training_runs").fetchone()
    assert len(rows) == 1
    epoch, decision, commit, issues, bg, match, visual, obs, n_images, c_at, u_at = rows[0]
    assert (epoch, decision, commit) == (4, "stop", "0123abcd" * 5)
    assert issues == ["background_mismatch", "two_tone_hair"]
    assert (bg, match, visual) == ("#ff00ff", False, 6.5)
    assert obs == "background #ff00ff, wanted #00ff00"
    assert n_images == "2"
    assert c_at == created[0] and u_at >= created[1]
    assert run == ("stopped", "hypothesis invalid", 3, "32", "3", {})


def test_anon_key_may_read_but_never_write(pg_database: str) -> None:
    apply_migrations(pg_database)
    with psycopg.connect(pg_database) as conn:
        _upsert(conn, "training_runs", [run_row(RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)], "run_name")
        _upsert(conn, "epoch_evaluations", [epoch_row(RUN, 1, sample_metrics(RUN, 1), None, "continue")],
                "run_name,epoch")
    anon_rows = [run_row("INTRUDER", "running", {})]
    review = review_row(RUN, 1, 9.0, 9.0, 9.0, "looks great")
    with psycopg.connect(pg_database) as conn:
        with conn.transaction():
            conn.execute("SET LOCAL ROLE anon")
            assert conn.execute("SELECT count(*) FROM epoch_evaluations").fetchone() == (1,)
        # First wall: privileges. The migration leaves anon SELECT only.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            postgrest_upsert(conn, "training_runs", json.dumps(anon_rows), "run_name", role="anon")
        # Second wall: even with Supabase's default grants (ALL to anon on new tables),
        # row level security refuses every write.
        conn.execute("GRANT ALL ON training_runs, epoch_evaluations, epoch_reviews "
                     "TO anon, authenticated")
        conn.commit()
        for role in ("anon", "authenticated"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                postgrest_upsert(conn, "training_runs", json.dumps(anon_rows), "run_name", role=role)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                postgrest_upsert(conn, "epoch_reviews", json.dumps([review]), "run_name,epoch", role=role)
            with conn.transaction():
                conn.execute(f"SET LOCAL ROLE {role}")
                assert conn.execute("UPDATE training_runs SET status='failed'").rowcount == 0
                assert conn.execute("DELETE FROM epoch_evaluations").rowcount == 0
        status = conn.execute("SELECT run_name, status FROM training_runs").fetchall()
        assert status == [(RUN, "running")]
        assert conn.execute("SELECT count(*) FROM epoch_evaluations").fetchone() == (1,)


def test_review_rows_are_accepted_and_corrected_in_place(pg_database: str) -> None:
    apply_migrations(pg_database)
    with psycopg.connect(pg_database) as conn:
        _upsert(conn, "training_runs", [run_row(RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)], "run_name")
        _upsert(conn, "epoch_reviews", [review_row(RUN, 3, 7.0, 8.0, 6.0, "hair two-toned")],
                "run_name,epoch")
        _upsert(conn, "epoch_reviews", [review_row(RUN, 3, 7.5, 8.0, 6.0, "hair fine")],
                "run_name,epoch")
        rows = conn.execute("SELECT epoch, visual_score, overall_score, notes FROM epoch_reviews").fetchall()
        with pytest.raises(psycopg.errors.CheckViolation):
            _upsert(conn, "epoch_reviews", [review_row(RUN, 4, 11.0, 8.0, 6.0, "")], "run_name,epoch")
    assert rows == [(3, 7.5, round((7.5 + 8 + 6) / 3, 4), "hair fine")]


@pytest.fixture(scope="module")
def migrated_dsn(postgres: str) -> Any:
    """One migrated database shared by the property test's examples."""
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS t_property WITH (FORCE)")
        conn.execute("CREATE DATABASE t_property")
    dsn = make_conninfo(postgres, dbname="t_property")
    apply_migrations(dsn)
    with psycopg.connect(dsn) as conn:
        _upsert(conn, "training_runs", [run_row(RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)], "run_name")
    yield dsn
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS t_property WITH (FORCE)")


_floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.integers(-5, 500))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    epoch=st.integers(0, 10_000),
    values=st.fixed_dictionaries({k: _floats for k in (
        "background_match_rate", "color_accuracy", "style_quality", "visual_score",
        "style_score", "prompt_score", "overall_score", "unique_colors")}),
    background_hex=st.one_of(st.none(), st.text(max_size=8), st.from_regex(r"#[0-9A-Fa-f]{6}", fullmatch=True)),
    issues=st.lists(st.text(st.characters(exclude_categories=()), max_size=20), max_size=4),
    commit=st.one_of(st.none(), st.text(max_size=12), st.from_regex(r"[0-9a-f]{40}", fullmatch=True)),
)
def test_any_evaluator_output_fits_the_schema(
    migrated_dsn: str, epoch: int, values: dict[str, Any], background_hex: Any,
    issues: list[str], commit: str | None,
) -> None:
    """Whatever the evaluators produce (NaN, out of range, odd strings), the row is accepted:
    one bad value must never block the delivery queue."""
    metrics = sample_metrics(RUN, 1)
    metrics["aggregate"].update(values, background_hex=background_hex, issues=issues)
    row = epoch_row(RUN, epoch, metrics, commit, "continue")
    with psycopg.connect(migrated_dsn) as conn:
        assert _upsert(conn, "epoch_evaluations", [row], "run_name,epoch") == 1
        stored = conn.execute(
            "SELECT visual_score, background_hex, issues FROM epoch_evaluations "
            "WHERE run_name=%s AND epoch=%s", (RUN, epoch)).fetchone()
    assert stored == (row["visual_score"], row["background_hex"], row["issues"])
