"""Energy per token: the counter's arithmetic and the reasons when there is none."""

from __future__ import annotations

import sys
import types

from runner.energy import EnergyMeter, run_energy, window_joules


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
    meter.start()
    meter.stop()
    assert fake.asked == "GPU-8932f937-d72c"
    assert meter.to_dict() == {"joules": 450.0, "note": None}


def test_no_nvml_is_a_reason_not_a_failure(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([], fail_init=True))
    meter = EnergyMeter("cuda:0", "GPU-1")
    meter.start()
    meter.stop()
    assert meter.joules is None and "NVML unavailable" in meter.note
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    meter = EnergyMeter("cuda:0", "GPU-1")
    meter.start()
    assert "nvidia-ml-py is not installed" in meter.note
