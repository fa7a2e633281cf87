"""Energy per token: the counter's arithmetic and the reasons when there is none."""

from __future__ import annotations

import sys
import types

from runner.host.rank_reports import run_energy
from runner.rank.energy import EnergyMeter, window_joules


def test_the_window_is_the_counter_difference_in_joules():
    assert window_joules(1_000, 251_000) == 250.0
    assert window_joules(5, 4) is None  # wrapped or reset: no figure rather than a wrong one


def test_run_figures_per_token_per_position_and_power():
    ranks = [{"rank": 0, "seconds": 10.0, "energy": {"joules": 3000.0, "note": None}},
             {"rank": 1, "seconds": 12.0, "energy": {"joules": 3600.0, "note": None}}]
    fig = run_energy(ranks, tokens=1000, positions=1200)
    assert fig["energy_joules"] == 6600.0
    assert fig["joules_per_token"] == 6.6
    assert fig["joules_per_position"] == 5.5
    assert fig["average_power_watts"] == 300.0 + 300.0
    assert fig["energy_note"] is None


def test_no_figure_unless_every_rank_read_one_and_the_reason_is_kept():
    cpu = [{"rank": 0, "seconds": 1.0, "energy": {"joules": None, "note": "no energy counter: CPU run"}},
           {"rank": 1, "seconds": 1.0, "energy": {"joules": None, "note": "no energy counter: CPU run"}}]
    fig = run_energy(cpu, tokens=10, positions=10)
    assert fig["energy_joules"] is None and fig["joules_per_token"] is None
    assert fig["energy_note"] == "every rank: no energy counter: CPU run"
    half = [{"rank": 0, "seconds": 1.0, "energy": {"joules": 5.0}}, {"rank": 1, "seconds": 1.0}]
    fig = run_energy(half, tokens=10, positions=10)
    assert fig["energy_joules"] is None and fig["energy_note"].startswith("rank(s) 1:")


def test_a_cpu_meter_reads_nothing_and_says_why():
    meter = EnergyMeter("cpu", None)
    meter.open()
    meter.start()
    meter.stop()
    assert meter.to_dict() == {"joules": None, "note": meter.note} and "CPU run" in meter.note


class FakeNvml(types.ModuleType):
    def __init__(self, readings, fail_init=False):
        super().__init__("pynvml")
        self.readings, self.fail_init, self.asked = list(readings), fail_init, None

    def nvmlInit(self):
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.asked = uuid
        return object()

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.readings.pop(0)

    def nvmlShutdown(self):
        pass


def test_a_gpu_meter_reads_its_own_gpu_by_uuid(monkeypatch):
    fake = FakeNvml([10_000, 460_000])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = EnergyMeter("cuda:1", "8932f937-d72c")
    meter.open()
    meter.start()
    meter.stop()
    assert fake.asked == "GPU-8932f937-d72c"
    assert meter.to_dict() == {"joules": 450.0, "note": None}


def test_no_nvml_is_a_reason_not_a_failure(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([], fail_init=True))
    meter = EnergyMeter("cuda:0", "GPU-1")
    meter.open()
    meter.start()
    meter.stop()
    assert meter.joules is None and "NVML unavailable" in meter.note
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    meter = EnergyMeter("cuda:0", "GPU-1")
    meter.open()
    meter.start()
    assert "nvidia-ml-py is not installed" in meter.note


def test_a_rank_opens_nvml_before_the_barrier_and_reads_only_the_counter_between_barrier_and_timer(
        monkeypatch, tmp_path):
    # The worker's own run_cell on a pretend GPU rank: NVML, the barrier, the timer and generate are
    # fakes that write down when they are called. nvmlInit and the UUID look-up take milliseconds,
    # differently on each rank; between the barrier and the timer they would start the ranks' clocks
    # at different moments.
    import time as real_time

    import torch

    from runner.config import RunConfig
    from runner.rank import cell, cuda, subworld

    calls: list[str] = []

    class Nvml(FakeNvml):
        def __getattribute__(self, name):
            if name.startswith("nvml"):
                calls.append(name)
            return super().__getattribute__(name)

    class Clock:
        def __getattr__(self, name):
            return getattr(real_time, name)

        def perf_counter(self):
            calls.append("timer")
            return real_time.perf_counter()

    class Generate:
        path = "dynamic"

        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, batch, new_tokens):
            calls.append("generate")
            raise RuntimeError("the test stops the run here")

    monkeypatch.setitem(sys.modules, "pynvml", Nvml([10_000, 20_000]))
    monkeypatch.setattr(subworld, "barrier", lambda n, sub: calls.append("barrier"))
    monkeypatch.setattr(cuda, "synchronize", lambda device: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: None)
    monkeypatch.setattr(cell, "time", Clock())
    monkeypatch.setattr(cell, "Generator", Generate)
    config = RunConfig(prompts=["One.", "Two."], device="cuda", gpus_per_node=1, warmup=False, max_new_tokens=4)
    held = cell.Loaded(state=types.SimpleNamespace(local_process_index=0), rank=0, device="cuda:0",
                       device_kind="cuda", dtype_name="float16", model=None,
                       tokenizer=lambda prompts: {"input_ids": [[1, 2, 3] for _ in prompts]}, eos=[],
                       expected=[{"index": 0, "name": "GPU", "uuid": "GPU-1"}],
                       subworlds=subworld.SubWorlds(world=1, groups={}), warmed=set())
    cell.run_cell(0, {"config": config.to_dict(), "result_path": str(tmp_path / "result.json")}, config, held)

    barrier, timer = calls.index("barrier"), calls.index("timer")
    assert calls[:barrier] == ["nvmlInit", "nvmlDeviceGetHandleByUUID"], calls
    assert calls[barrier + 1:timer] == ["nvmlDeviceGetTotalEnergyConsumption"], calls
    assert calls[timer + 1] == "generate", calls
