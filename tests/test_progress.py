import io

from emailsrc.progress import NullReporter, PlainReporter, RichReporter, make_reporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_means_no_output() -> None:
    stream = io.StringIO()
    reporter = make_reporter(True, stream)
    assert isinstance(reporter, NullReporter)
    reporter.file_started("a.csv", 10)
    reporter.events_done(5, 0)
    reporter.close()
    assert stream.getvalue() == ""


def test_plain_lines_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    reporter = make_reporter(False, stream)
    assert isinstance(reporter, PlainReporter)
    reporter.file_started("export.csv", 1000)
    reporter.file_progress(500)
    reporter.events_done(2500, 3)
    reporter.retried()
    reporter.close()
    text = stream.getvalue()
    assert "reading export.csv" in text
    assert "sent 2,500" in text and "failed 3" in text and "retries 1" in text


def test_plain_lines_are_periodic_not_per_event() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream, interval=3600)
    for _ in range(1000):
        reporter.events_done(1, 0)
    assert stream.getvalue().count("\n") == 0
    reporter.close()
    assert stream.getvalue().count("\n") == 1


def test_rich_bars_on_a_terminal() -> None:
    stream = Terminal()
    reporter = make_reporter(False, stream)
    assert isinstance(reporter, RichReporter)
    reporter.file_started("export.csv", 2000)
    reporter.file_progress(1000)
    reporter.events_done(10, 1)
    reporter.close()
    assert "export.csv" in stream.getvalue()
