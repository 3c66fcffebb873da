"""The one epoch-summary formatter: the table columns status, replay and demo print, and the
one-line verdict of evaluate, the launcher and the alerts."""

from __future__ import annotations

from watcher.rules import Decision
from watcher.summary import fmt, metric_cells, one_line_verdict, table_header

EPOCH = {"background_match_rate": 0.25, "color_accuracy": 41.04, "style_quality": None,
         "overall_score": 3.44, "n_images": 4}


def test_columns_line_up_under_their_headers() -> None:
    header, cells = table_header(), metric_cells(EPOCH)
    assert header == "bg match  colour   style  score"
    assert cells == "    0.25    41.0       -    3.4"
    assert len(header) == len(cells)
    assert metric_cells(EPOCH, " ") == "    0.25   41.0      -   3.4"
    assert len(table_header(" ")) == len(metric_cells({}, " "))


def test_fmt_shows_a_dash_for_what_is_missing() -> None:
    assert [fmt(None), fmt(True), fmt("x"), fmt(7, "d"), fmt(0.5, ".0%")] == ["-", "-", "-", "7", "50%"]


def _decision(name: str, outcome: str, action: str) -> Decision:
    return Decision(criterion=name, metric="background_match_rate", value=0.25, comparison=">=",
                    threshold=0.5, outcome=outcome, action=action, message=name)


def test_one_line_verdict_names_the_stop_alert_and_mark() -> None:
    stop = _decision("green_background_by_epoch_4", "fail", "stop")
    alert = _decision("colour_low", "fail", "alert")
    mark = _decision("candidate", "marked", "mark")
    assert (one_line_verdict(EPOCH, [stop, alert])
            == "bg 1/4 right, colour 41.0, score 3.4/10 -> STOP (green_background_by_epoch_4)")
    assert one_line_verdict(EPOCH, [alert, mark]) == ("bg 1/4 right, colour 41.0, score 3.4/10 -> "
                                                      "continue, alert (colour_low) [production candidate]")
    assert one_line_verdict({}, []) == " -> continue"
