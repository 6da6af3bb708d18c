"""The zbb command line: items, score (happy path and every error path: exit 2, one line, no traceback)."""

import csv
import json
import socket

import pytest

from zbb import ITEMS_PATH
from zbb.cli import main


def _write_replies(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_items_prints_bank_path(capsys):
    assert main(["items"]) == 0
    assert capsys.readouterr().out.strip() == str(ITEMS_PATH)


def test_score_writes_report(tmp_path, capsys):
    replies = _write_replies(
        tmp_path / "replies.jsonl",
        [
            {
                "id": "penguins-false",
                "condition": "no_interrupt",
                "reply": "No, penguins live in Antarctica.",
                "seed": 1,
            },
            {"id": "penguins-true", "condition": "no_interrupt", "reply": "Yes, penguins do."},
            {"id": "penguins-false", "condition": "interrupt", "reply": "And music is fun."},
            {"id": "penguins-true", "condition": "interrupt", "reply": "Yes."},
            {"id": "penguins-false", "condition": "interrupt+steer", "reply": "Penguins? No."},
            {
                "id": "penguins-true",
                "condition": "interrupt+steer",
                "reply": "Music, right?",
                "chunks": [
                    {"text": "Music", "timestamp": [5.5, 6.0]},
                    {"text": "right?", "timestamp": [6.0, 6.6]},
                ],
                "interrupt_end_s": 5.0,
            },
        ],
    )
    out = tmp_path / "report"
    assert (
        main(
            [
                "score",
                "--replies",
                str(replies),
                "--out",
                str(out),
                "--caveat",
                "hand-written replies",
                "--n-boot",
                "100",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "hand-written replies" in printed and str(out) in printed
    with (out / "items.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["condition"], r["correct"], r["iwor"]) for r in rows] == [
        ("penguins-false", "no_interrupt", "1", "1"),
        ("penguins-true", "no_interrupt", "1", "1"),
        ("penguins-false", "interrupt", "0", "0"),
        ("penguins-true", "interrupt", "1", "0"),
        ("penguins-false", "interrupt+steer", "1", "1"),
        ("penguins-true", "interrupt+steer", "1", "0"),
    ]
    assert rows[0]["seed"] == "1" and rows[1]["seed"] == ""
    assert (rows[5]["tor"], rows[5]["latency"]) == ("1", "0.5")
    report = json.loads((out / "report.json").read_text())
    assert report["item_bank"] == "zbb-1" and report["scorer"] == "rules"
    assert report["conditions"]["interrupt"]["metrics"]["correct"]["mean"] == 0.5
    # correctness: (1 - 0.5) / (1 - 0.5) = 1; IWOR: (0.5 - 0) / (1 - 0) = 0.5
    assert report["recovery"]["interrupt+steer"] == {"correct": 1.0, "iwor": 0.5}
    assert (out / "report.png").stat().st_size > 0 and (out / "report.md").is_file()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"id": "penguins-true", "condition": "interrupt", "reply": "yes"}', "{oops"],
            "replies.jsonl:2: not valid JSON",
        ),
        (
            [{"id": "unicorns-true", "condition": "interrupt", "reply": "yes"}],
            "replies.jsonl:1: unknown item id 'unicorns-true'",
        ),
        (
            [{"id": "penguins-true", "condition": "interupt", "reply": "yes"}],
            "replies.jsonl:1: unknown condition 'interupt'",
        ),
        ([{"id": "penguins-true", "condition": "interrupt"}], "replies.jsonl:1: missing field 'reply'"),
        (
            [{"id": "penguins-true", "condition": "interrupt", "reply": 3}],
            "replies.jsonl:1: 'reply' must be a string",
        ),
        (["[1, 2]"], "replies.jsonl:1: expected a JSON object"),
        ([], "replies.jsonl: no replies"),
    ],
)
def test_score_bad_input_is_one_clear_error(tmp_path, capsys, lines, message):
    replies = _write_replies(tmp_path / "replies.jsonl", lines)
    assert main(["score", "--replies", str(replies), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("zbb: error: ") and message in captured.err
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_missing_replies_file(tmp_path, capsys):
    assert main(["score", "--replies", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"zbb: error: replies file not found: {tmp_path / 'nope.jsonl'}\n"


def test_judge_options_go_together(tmp_path, capsys):
    replies = _write_replies(
        tmp_path / "r.jsonl", [{"id": "penguins-true", "condition": "interrupt", "reply": "yes"}]
    )
    assert main(["score", "--replies", str(replies), "--out", str(tmp_path / "o"), "--judge-model", "m"]) == 2
    assert "--judge-url and --judge-model go together" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_judge_failure_is_one_clear_error(tmp_path, capsys):
    replies = _write_replies(
        tmp_path / "r.jsonl", [{"id": "penguins-true", "condition": "interrupt", "reply": "yes"}]
    )
    url = f"http://127.0.0.1:{_closed_port()}/v1"  # nothing listens there: connection refused, fast
    argv = [
        "score",
        "--replies",
        str(replies),
        "--out",
        str(tmp_path / "o"),
        "--judge-url",
        url,
        "--judge-model",
        "m",
        "--judge-timeout",
        "2",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zbb: error: judge at {url}/chat/completions unreachable")
    assert err.count("\n") == 1


def test_score_with_judge_uses_its_verdicts(tmp_path, monkeypatch):
    # The HTTP side is covered in test_zbb_judge.py; here the judge is replaced to check the wiring.
    import zbb.judge

    asked = []

    def fake_judge(item, reply, config):
        asked.append((item["id"], reply, config.model, config.timeout_s))
        return zbb.judge.JudgeVerdict(correct=True, heard_subject=True)

    monkeypatch.setattr(zbb.judge, "judge_reply", fake_judge)
    replies = _write_replies(
        tmp_path / "r.jsonl",
        [
            {"id": "penguins-true", "condition": "interrupt", "reply": "music is nice"},
            {"id": "penguins-false", "condition": "interrupt", "reply": "yes"},
        ],
    )
    assert (
        main(
            [
                "score",
                "--replies",
                str(replies),
                "--out",
                str(tmp_path / "o"),
                "--n-boot",
                "50",
                "--judge-url",
                "http://127.0.0.1:1/v1",
                "--judge-model",
                "stub",
                "--judge-timeout",
                "7",
            ]
        )
        == 0
    )
    assert asked == [("penguins-true", "music is nice", "stub", 7.0), ("penguins-false", "yes", "stub", 7.0)]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["scorer"] == "llm-judge:stub"
    assert report["judge_rule_agreement_correct"] == 0.0
    with (tmp_path / "o" / "items.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["correct"], r["iwor"], r["correct_rule"], r["iwor_rule"]) for r in rows] == [
        ("1", "1", "0", "0")
    ] * 2


def test_unknown_subcommand_is_argparse_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_run_detectors_fire_only_while_the_model_speaks_unless_told(monkeypatch):
    import zbb.workers

    configs = []
    monkeypatch.setattr(zbb.workers, "run_in_workers", lambda config, out, **options: configs.append(config))
    base = ["run", "--out", "x", "--onset", "energy", "--no-report"]
    assert main(base) == 0 and main([*base, "--no-only-while-speaking"]) == 0
    assert [c.onset_only_while_model_speaks for c in configs] == [True, False]


@pytest.mark.parametrize(("flags", "n_items"), [([], 1), (["--keep-unmet"], 2)])
def test_report_leaves_out_interruptions_that_landed_in_a_pause_unless_kept(tmp_path, capsys, flags, n_items):
    rows = [{"id": "penguins-true", "condition": "interrupt", "repetition": 0, "correct": 1, "iwor": 1,
             "model_speaking_at_onset": True, "onset_frame": 50},
            {"id": "penguins-false", "condition": "interrupt", "repetition": 0, "correct": 0, "iwor": 0,
             "model_speaking_at_onset": False, "onset_frame": 60}]
    _write_replies(tmp_path / "results.jsonl", rows)
    assert main(["report", "--out", str(tmp_path), *flags]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["conditions"]["interrupt"]["n_items"] == n_items
    assert report["condition_check"]["conditions"]["interrupt"]["unmet"][0]["id"] == "penguins-false"
    assert "| interrupt | speaking | 1 of 2 | 0.50 |" in capsys.readouterr().out


# --- defaults that match the README, and the newcomer's messages -------------------------------------
ITEM_ARGS = ["--items", "penguins-false", "--interrupt-after", "2", "--quiet-frames", "2", "--max-wait", "4",
             "--reply-frames", "3", "--greedy"]


def _organism_vector(tmp_path, layers=(5,)):
    import torch

    from duplex_steer.steering import PerceptionVector

    # the organism has user-stream heads (dep_q 16): a PersonaPlex-shaped architecture
    fingerprint = {"architecture": "moshi-personaplex", "hidden_size": 128, "num_layers": 6, "checkpoint": "organism"}
    vec = PerceptionVector({k: torch.ones(128) for k in layers}, {"model": fingerprint, "method": "test"})
    return str(vec.save(tmp_path / "organism.safetensors"))


def test_every_model_command_defaults_to_the_organism_and_its_steering():
    from zbb.cli import build_parser

    parser = build_parser()
    for argv in (["main"], ["run", "--out", "o"], ["sweep", "--out", "o"], ["import-fdb", "d", "--out", "o"]):
        args = parser.parse_args(argv)
        assert args.model == "organism", argv
        if argv[0] != "main":
            assert (args.layer, args.alpha, args.span) == (None, None, None)  # None: the model's default


def test_run_refuses_a_negative_alpha_and_a_bad_layer_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import duplex_steer

    monkeypatch.setattr(duplex_steer, "load", lambda *a, **k: pytest.fail("the model loaded before the check"))
    vec = _organism_vector(tmp_path)
    base = ["run", "--vector", vec, "--out", str(tmp_path / "run"), *ITEM_ARGS]
    assert main([*base, "--alpha", "-2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("zbb: error: --alpha -2 is negative: it steers away from the perceptive state, the opposite of "
                   "the method; pass --allow-negative-alpha to run it anyway")
    assert main([*base, "--layer", "9"]) == 2
    assert capsys.readouterr().err.strip() == ("zbb: error: --layer 9: the model this vector was fitted on has 6 "
                                               "layers (0..5); pick one of them")
    assert main(["sweep", "--vector", vec, "--out", str(tmp_path / "sw"), "--alphas", "1", "-1"]) == 2
    assert "--alphas -1 is negative" in capsys.readouterr().err
    (tmp_path / "bad.safetensors").write_text("no")
    assert main(["run", "--vector", str(tmp_path / "bad.safetensors"), "--out", str(tmp_path / "r2")]) == 2
    assert "is not a safetensors vector file" in capsys.readouterr().err


def test_run_on_the_organism_records_its_steering_and_caveat(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--vector", _organism_vector(tmp_path), "--out", str(out), "--conditions", "interrupt",
            "interrupt+steer", *ITEM_ARGS]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["alpha"] is None and config["steering"] == {
        "layer": 5, "alpha": 1.0, "span": 3,
        "from": {"layer": "the model's default", "alpha": "the model's default", "span": "the model's default"}}
    report = (out / "report.md").read_text()
    assert ("- **Steering:** layer 5 (the model's default), alpha 1.0 (the model's default), span 3 frames "
            "(the model's default), linear schedule") in report
    assert "organism: a 4.2M-parameter model trained on CPU on a synthetic toy world" in report
    assert json.loads((out / "report.json").read_text())["caveat"].startswith("organism: a 4.2M-parameter")


def test_import_fdb_on_the_organism_warns_past_its_context_and_carries_the_caveat(tmp_path, capsys):
    from tests.conftest import fixture_dir

    fdb = fixture_dir("fdb-user-interruption-example")
    assert main(["import-fdb", str(fdb), "--out", str(tmp_path / "short"), "--max-seconds", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zbb: error: ") and "s long, over the 10 s limit" in err and "--no-length-limit" in err
    out = tmp_path / "fdb"
    assert main(["import-fdb", str(fdb), "--out", str(out), "--greedy"]) == 0
    warning = "item 1 lasts 28.2 s (352 frames); organism attends to the last 256 frames (20.5 s) only"
    assert warning in capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert warning in report and "organism: a 4.2M-parameter model" in report
