"""One hardware job per machine: a lock every runner takes around a launch,
released by the kernel when its holder dies; a live server takes over what a
dead owner left, so its sweep can be stopped and deleted."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT
from faultkit import fault_config, wait_until_final

from db.store import Store
from runner.host.hardware_lock import HardwareLock, describe_holder
from runner.processes import OWNER_ENV, OWNER_START_ENV
from studio.sweeps.plan import plan_sweep
from studio.sweeps.supervisor import Supervisor
from studio.web import history

pytestmark = pytest.mark.timeout(240)


def test_a_second_holder_waits_hears_who_holds_it_and_can_give_up(tmp_path):
    path = tmp_path / "hw.lock"
    first, second = HardwareLock(path), HardwareLock(path)
    assert first.acquire({"program": "server", "run_id": 7})
    heard, cancel = [], threading.Event()
    waiter = threading.Thread(target=lambda: heard.append(second.acquire({"program": "CLI"}, cancel=cancel,
                                                                         on_wait=heard.append)))
    waiter.start()
    time.sleep(0.6)
    assert waiter.is_alive()  # still waiting
    assert heard[0]["program"] == "server" and heard[0]["run_id"] == 7
    assert "a studio server (PID" in describe_holder(heard[0]) and "run 7" in describe_holder(heard[0])
    cancel.set()
    waiter.join(5)
    assert heard[-1] is False
    first.release()
    assert second.acquire({"program": "CLI"}) and second.holder()["program"] == "CLI"
    second.release()


def test_a_killed_holder_frees_the_machine(tmp_path):
    path = tmp_path / "hw.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); "
         "from runner.host.hardware_lock import HardwareLock; "
         f"HardwareLock({str(path)!r}).acquire({{'program': 'server'}}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    lock = HardwareLock(path)
    got = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire({"program": "CLI"})))
    waiter.start()
    time.sleep(0.5)
    assert not got
    holder.kill()  # SIGKILL: no clean-up ran, the kernel drops the lock
    holder.wait()
    waiter.join(5)
    assert got == [True]
    lock.release()




@pytest.mark.slow
def test_two_servers_on_two_databases_take_turns(tmp_path):
    a, b = Supervisor(tmp_path / "a.db"), Supervisor(tmp_path / "b.db")
    try:
        first = a.submit(plan_sweep(fault_config(gpus_per_node=2), [2]))
        deadline = time.monotonic() + 60
        while not any(r["status"] == "running" for r in a.status(first)["runs"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = b.submit(plan_sweep(fault_config(gpus_per_node=1), [1]))
        wait_until_final(a, first)
        status = wait_until_final(b, second)
    finally:
        a.shutdown()
        b.shutdown()
    assert any("waiting for the hardware: a studio server" in line for line in status["log"]), status["log"]
    run_a = Store(tmp_path / "a.db").get_sweep(first)["runs"][0]
    run_b = Store(tmp_path / "b.db").get_sweep(second)["runs"][0]
    assert run_a["status"] == run_b["status"] == "succeeded"
    # b's run waited through a's generation: its queue time covers it
    assert run_b["phases"]["queue"] >= run_a["phases"]["generate"]


@pytest.mark.slow
def test_a_live_server_takes_over_a_dead_owners_sweep(db_path):
    store = Store(db_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = {OWNER_ENV: str(dead.pid), OWNER_START_ENV: "1.0"}  # a process that no longer runs
    supervisor = Supervisor(db_path)  # starts first: the dead owner's sweep appears after
    try:
        config = fault_config(gpus_per_node=1).to_dict()
        sweep = store.create_sweep({"model": config["model"]}, [1], 2, origin="cli", owner=owner)
        ids = [store.create_run(config, sweep_id=sweep, repeat_index=r) for r in range(2)]
        store.mark_running(ids[0], [dead.pid])
        with pytest.raises(Exception, match="still queued or running"):
            history.delete_selected(store, sweep_ids=[sweep])
        supervisor.cancel(sweep)  # what Stop does for a sweep this server does not run
        assert store.get_sweep(sweep)["status"] == "interrupted"
        assert {r["status"] for r in store.get_sweep(sweep)["runs"]} == {"interrupted"}
        assert history.delete_selected(store, sweep_ids=[sweep]) == "Deleted 2 run(s) and 1 sweep(s)."
    finally:
        supervisor.shutdown()


def test_the_machine_goes_to_whoever_waited_first_and_waiters_know_their_place(tmp_path):
    """A runner arriving after another began waiting (a CLI between two of its runs)
    does not overtake it (issue 27 item 9)."""
    path = tmp_path / "hw.lock"
    holder, early, late = HardwareLock(path), HardwareLock(path), HardwareLock(path)
    assert holder.acquire({"program": "CLI", "run_id": 1})
    order, places = [], {"early": [], "late": []}

    def take(lock, name):
        assert lock.acquire({"program": name}, on_wait=lambda _: places[name].append(lock.position))
        order.append(name)
        time.sleep(0.3)
        lock.release()

    waiting = threading.Thread(target=take, args=(early, "early"))
    waiting.start()
    time.sleep(0.6)  # the early one is waiting, between two polls
    holder.release()
    take(late, "late")  # arrives the moment the machine is free, like a CLI's next run
    waiting.join(10)
    assert order == ["early", "late"], order
    # late was behind early until early took the machine, then next in line (heard again
    # when early's name replaced the old holder's in the lock file)
    late = places["late"]
    assert places["early"][0] == 1 and late and late[-1] == 1 and late == sorted(late, reverse=True), places
    assert set(late) <= {1, 2}, places
    assert not list((tmp_path / "hw.lock.queue").iterdir())  # no ticket left behind


def test_a_waiter_behind_another_is_second_in_line(tmp_path):
    path = tmp_path / "hw.lock"
    holder, first, second = HardwareLock(path), HardwareLock(path), HardwareLock(path)
    assert holder.acquire({"program": "server"})
    cancel = threading.Event()
    threads = [threading.Thread(target=lock.acquire, args=({"program": "CLI"},), kwargs={"cancel": cancel})
               for lock in (first, second)]
    threads[0].start()
    time.sleep(0.3)
    threads[1].start()
    time.sleep(0.6)
    assert (first.position, second.position) == (1, 2)
    cancel.set()
    for t in threads:
        t.join(5)
    holder.release()


def test_a_sweep_waiting_for_the_machine_shows_its_place_in_line(db_path):
    held = HardwareLock()  # the session's lock (conftest): another runner holds the machine
    assert held.acquire({"program": "CLI", "run_id": 99})
    supervisor = Supervisor(db_path, resume=False)
    try:
        sweep = supervisor.submit(plan_sweep(fault_config(gpus_per_node=1), [1]))
        deadline = time.monotonic() + 30
        while (supervisor.status(sweep)["state"], supervisor.status(sweep)["queue_position"]) != ("running", 1):
            assert time.monotonic() < deadline, supervisor.status(sweep)
            time.sleep(0.1)
        status = supervisor.status(sweep)
        assert status["state"] == "running" and any("place in line: 1" in line for line in status["log"])
        assert supervisor.cancel(sweep)
        wait_until_final(supervisor, sweep)
        assert supervisor.status(sweep)["queue_position"] is None
    finally:
        held.release()
        supervisor.shutdown()
