"""stop_group stops a whole process group, including children that outlive the leader."""
import subprocess
import time

from controller.ports import group_alive, stop_group


def test_stop_group_reaches_children_that_outlive_the_leader():
    # The leader starts a child that ignores SIGTERM, then exits: only the group kill can end it.
    proc = subprocess.Popen(["sh", "-c", "(trap '' TERM; sleep 60) & sleep 0.3"], start_new_session=True)
    proc.wait(5)
    time.sleep(0.2)
    assert group_alive(proc.pid)
    stop_group(proc.pid, grace=1.0)
    assert not group_alive(proc.pid)


def test_stop_group_of_a_finished_group_returns_at_once():
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait(5)
    started = time.monotonic()
    stop_group(proc.pid, grace=5.0)
    stop_group(None)
    assert time.monotonic() - started < 1.0
