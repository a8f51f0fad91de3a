"""`hsm report` and `write_reports`: self-contained HTML pages (checked in headless Chromium),
performance_analysis.yaml and the error analysis, from a sweep run for real."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hsm_project import Project
from hsm_core.monitor import svg
from hsm_core.monitor.report import write_reports
from hsm_core.testing.services import require_service
from monitor_sweeps import outcome_project, png_colour_stats, run_outcome_sweep

REPORT_FILES = ("reports/completion_report.html", "reports/error_analysis.html", "reports/performance_analysis.yaml",
                "logs/errors/failed_tasks.yaml", "logs/errors/error_patterns.yaml")


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    project = outcome_project(tmp_path_factory.mktemp("report") / "proj")
    sweep = run_outcome_sweep(project)
    proc = project.hsm("report", sweep.name)
    assert proc.returncode == 0, proc.stderr
    return project, sweep


def _no_network(html: str) -> None:
    # Nothing a browser would fetch: no scripts, stylesheets, images, fonts or frames from anywhere.
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", html, re.I)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert "http://" not in html and "https://" not in html


def test_report_writes_every_file(done: tuple[Project, Path]) -> None:
    _, sweep = done
    for rel in REPORT_FILES:
        assert (sweep / rel).is_file(), rel


def test_completion_report_content(done: tuple[Project, Path]) -> None:
    _, sweep = done
    html = (sweep / "reports" / "completion_report.html").read_text()
    _no_network(html)
    assert f"<h1>Sweep <code>{sweep.name}</code></h1>" in html
    assert '<div class="n ok">4</div><div class="l">Completed</div>' in html
    assert '<div class="n bad">12</div><div class="l">Failed</div>' in html
    assert "Per-source utilization" in html and "<b>local</b>" in html and "Healthy" in html
    for pattern in ("out of memory (CUDA)", "ValueError: learning rate &lt;n&gt; out of range at step &lt;n&gt;",
                    "out of memory? (killed with SIGKILL, exit code 137)"):
        assert pattern in html, pattern
    # The default metric is the first one found; one plot per parameter that varies.
    assert "Metric <b>loss</b>" in html
    titles = re.findall(r"<title>([^<]*)</title>", html)
    assert "loss vs lr" in titles and "loss vs opt" in titles and "loss vs mode" not in titles
    assert html.count("<svg") >= 3  # two plots and the duration histogram
    # User values are escaped, never markup.
    assert "&lt;i&gt;sgd&lt;/i&gt;" in html and "<i>sgd</i>" not in html


def test_metric_option_and_unknown_metric(done: tuple[Project, Path]) -> None:
    project, sweep = done
    proc = project.hsm("report", sweep.name, "--metric", "acc.top1", check=True)
    assert "completion_report.html" in proc.stdout
    html = (sweep / "reports" / "completion_report.html").read_text()
    assert "Metric <b>acc.top1</b>" in html and "acc.top1 vs lr" in html
    bad = project.hsm("report", sweep.name, "--metric", "accuracy")
    assert bad.returncode == 2 and "no metric 'accuracy'" in bad.stderr and "loss, acc.top1, acc.top5" in bad.stderr
    assert "Traceback" not in bad.stderr
    project.hsm("report", sweep.name, check=True)  # back to the default for the other tests


def test_performance_analysis(done: tuple[Project, Path]) -> None:
    _, sweep = done
    perf = yaml.safe_load((sweep / "reports" / "performance_analysis.yaml").read_text())
    assert perf["tasks"]["total"] == 16 and perf["tasks"]["completed"] == 4 and perf["tasks"]["failed"] == 12
    local = perf["durations"]["per_source"]["local"]
    assert local["count"] == 4 and 0 < local["min"] <= local["median"] <= local["max"]
    assert local["min"] <= local["mean"] <= local["max"]
    assert perf["sources"]["local"]["max_tasks"] == 2 and perf["sources"]["local"]["failed"] == 12
    assert perf["wall_time_seconds"] > 0


def test_error_analysis_page(done: tuple[Project, Path]) -> None:
    _, sweep = done
    html = (sweep / "reports" / "error_analysis.html").read_text()
    _no_network(html)
    assert html.count('<h2 id="pattern-') == 3
    assert "torch.cuda.OutOfMemoryError: CUDA out of memory" in html  # the stderr tail itself
    assert "ValueError: learning rate 0.1 out of range at step 73" in html


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    require_service("chromium", "no chromium on PATH (Debian package: chromium)")


@pytest.mark.parametrize("page", ["completion_report.html", "error_analysis.html"])
def test_report_renders_in_headless_chromium(done: tuple[Project, Path], tmp_path: Path, page: str) -> None:
    chromium = _chromium()
    _, sweep = done
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,1600", (sweep / "reports" / page).resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    drawn, colours = png_colour_stats(shot)
    assert drawn > 0.05, f"the page looks blank ({drawn:.1%} of pixels differ from the background)"
    assert len(colours) > 10
    if page == "completion_report.html":
        # The status bar: green for completed, red for failed.
        assert any(g >= 4 and r <= 1 and b <= 3 for r, g, b in colours), colours
        assert any(r >= 6 and g <= 2 and b <= 2 for r, g, b in colours), colours


def test_write_reports_never_raises(done: tuple[Project, Path], tmp_path: Path) -> None:
    _, sweep = done
    copy = tmp_path / "outputs" / sweep.name
    shutil.copytree(sweep, copy)
    (copy / "tasks" / "task_001" / "metrics.json").write_text("{broken")
    paths = write_reports(copy)
    assert sorted(p.relative_to(copy).as_posix() for p in paths) == sorted(REPORT_FILES)
    assert write_reports(tmp_path / "no such sweep!") == []
    # A reports dir that cannot be written: a warning in sweep.log, no exception.
    shutil.rmtree(copy / "reports")
    (copy / "reports").write_text("not a directory")
    assert write_reports(copy) == []
    assert "warning: reports not written" in (copy / "logs" / "sweep.log").read_text()


def test_plots_of_large_sweeps_are_sampled_and_numeric_axes_are_log_when_wide() -> None:
    points = [(10 ** (-5 + 4 * i / 4999), float(i % 97)) for i in range(5000)]
    out = svg.metric_plot(points, x_label="lr", y_label="loss")
    assert out.count("<circle") == svg.MAX_POINTS
    assert "lr (log scale)" in out
    strip = svg.metric_plot([("a", 1.0), ("b", 2.0), ("a", float("nan")), (True, 3.0)], x_label="opt", y_label="m")
    assert strip.count("<circle") == 3 and ">a<" in strip and ">True<" in strip
