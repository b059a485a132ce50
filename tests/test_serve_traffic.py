"""The server's request log (aocr.serving.traffic): failures one by one, the rest as a summary a minute."""

import logging

from aocr.serving.traffic import Traffic


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_answered_requests_log_at_debug_failures_at_info_and_a_summary_each_interval(caplog):
    clock = Clock()
    traffic = Traffic(interval_s=60.0, clock=clock)
    caplog.set_level(logging.DEBUG, logger="aocr")
    for seconds in (0.010, 0.020, 0.030):
        traffic.record("POST /v1/models/aocr:predict", "200", True, seconds)
    traffic.record("POST /v1/models/aocr:predict", "400", False, 0.001)
    levels = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert levels[:3] == [(logging.DEBUG, f"POST /v1/models/aocr:predict 200 {ms:.1f} ms") for ms in (10, 20, 30)]
    assert levels[3] == (logging.INFO, "POST /v1/models/aocr:predict 400 1.0 ms")
    assert len(levels) == 4  # no summary before the interval has passed
    clock.now += 60.0
    traffic.record("gRPC Predict", "OK", True, 0.040)
    summary = caplog.records[-1]
    assert summary.levelno == logging.INFO
    assert summary.getMessage().startswith("last 60 s: 5 requests (0.1 a second), 1 failed; latency p50 20.0 ms")
    caplog.clear()
    clock.now += 5.0
    traffic.flush()  # nothing since the summary: no line
    assert caplog.records == []
    traffic.record("gRPC GetModelStatus", "NOT_FOUND", False, 0.002)
    traffic.flush()
    assert caplog.records[-1].getMessage() == ("last 0 s: 1 request (1.0 a second), 1 failed; "
                                               "latency p50 2.0 ms, p99 2.0 ms")


def test_a_failed_requests_line_is_short_and_one_line_whatever_its_path(caplog):
    caplog.set_level(logging.INFO, logger="aocr")
    Traffic().record("GET /v1/" + "x" * 100_000 + "\nforged line", "404", False, 0.001)
    [line] = [record.getMessage() for record in caplog.records]
    assert len(line) < 300 and "\n" not in line and line.startswith("GET /v1/xxx")


def test_the_log_file_rolls_over_instead_of_growing_without_end(tmp_path, monkeypatch):
    from aocr import cli

    monkeypatch.setattr(cli, "LOG_FILE_BYTES", 2000)
    log_path = tmp_path / "aocr.log"
    cli.setup_logging(False, str(log_path))
    logger = logging.getLogger("aocr")
    try:
        for number in range(200):
            logger.info("request %d answered with a line long enough to fill the file quickly", number)
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers.clear()
    files = sorted(path.name for path in tmp_path.iterdir())
    assert files == ["aocr.log", "aocr.log.1", "aocr.log.2", "aocr.log.3"]
    assert all(path.stat().st_size <= 2100 for path in tmp_path.iterdir())
    assert "request 199" in log_path.read_text(encoding="utf-8")
