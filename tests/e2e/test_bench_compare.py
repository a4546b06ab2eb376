"""`bench.compare` runs each revision's own code: the bench, and the processes it starts."""

from __future__ import annotations

import sys

from bench import compare

# the bench starts the services with `python -m`, which puts the working directory first on sys.path
_CHILD = "import subprocess, sys; subprocess.run([sys.executable, '-m', 'services.marker'])"


def test_a_worktree_runs_its_own_code_in_its_children_too(tmp_path):
    commit, tree = compare.checkout("HEAD", tmp_path / "trees")
    try:
        assert (tree / "services").is_dir() and len(commit) == 40
        (tree / "services" / "marker.py").write_text('print("the worktree")\n')
        ran = compare.run_in(tree, [sys.executable, "-c", _CHILD])
        assert ran.stdout.strip() == "the worktree", ran.stderr
    finally:
        compare.remove(tree)
    assert not tree.exists()


def test_the_table_has_a_column_per_run_and_a_row_per_figure():
    results = {
        "e2e_p50_ms_at_500": 61.0,
        "burst_accepted_per_s": None,
        "resources": {"cpu_ms_per_registration": {"e2e": {"machine": 3.9, "postgres": 1.2}}},
    }
    runs = [("a (1234567) #1", compare.figures(results)), ("b (89abcde) #1", {"e2e_p50_ms_at_500": 70.5})]
    assert compare.figures(results) == {"e2e_p50_ms_at_500": 61.0, "cpu_ms_per_registration_e2e": 3.9}
    assert compare.table(runs).splitlines() == [
        "| figure | a (1234567) #1 | b (89abcde) #1 |",
        "|---|---|---|",
        "| e2e_p50_ms_at_500 | 61.0 | 70.5 |",
        "| cpu_ms_per_registration_e2e | 3.9 |  |",
    ]
