"""Console.captured: library prints go to the run's log, and the console is back afterwards, even when the trainers
fitted from driver threads overlap (no Ray: the threads are plain)."""
from __future__ import annotations

import sys
import threading

from hardmine.console import Console


def _overlapping(console: Console) -> None:
    """A enters, B enters, A leaves, B leaves: the order in which stacked redirect_stdout blocks restore a stale stream."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a():
        with console.captured("fold a"):
            print("trial table of a")
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with console.captured("fold b"):
            print("report of b", file=sys.stderr)
            b_in.set()
            a_out.wait(5)
            print("late line of b")

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)


def test_overlapping_captures_restore_the_console_and_log_everything(tmp_path, capsys):
    console = Console()
    console.attach(str(tmp_path))
    out, err = sys.stdout, sys.stderr
    _overlapping(console)
    assert sys.stdout is out and sys.stderr is err
    print("the stage summary after the folds")
    seen = capsys.readouterr()
    assert "the stage summary after the folds" in seen.out
    assert "trial table" not in seen.out + seen.err and "report of b" not in seen.out + seen.err
    console.detach()
    log = (tmp_path / "hardmine.log").read_text()
    for line in ("[fold a] output:", "trial table of a", "report of b", "late line of b"):
        assert line in log


def test_nested_capture_in_one_thread_and_verbose_passthrough(tmp_path, capsys):
    console = Console()
    console.attach(str(tmp_path))
    out = sys.stdout
    with console.captured("outer"):
        with console.captured("inner"):
            print("inner line")
        assert sys.stdout is not out  # still captured: the outer block has not left
        print("outer line")
    assert sys.stdout is out
    loud = Console(verbose=True)
    with loud.captured("verbose"):
        print("shown with -v")
    seen = capsys.readouterr().out
    assert "shown with -v" in seen and "inner line" not in seen and "outer line" not in seen
    console.detach()
    log = (tmp_path / "hardmine.log").read_text()
    assert "[inner] output:\ninner line" in log and "[outer] output:\nouter line" in log
