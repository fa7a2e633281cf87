"""The worker's device decisions, as pure functions: no GPU needed."""

from __future__ import annotations

import pytest

from runner.rank.cuda import (
    device_mismatch,
    legacy_peak_bytes,
    memory_peaks,
    pretrained_load_kwargs,
    probe_decision,
    synchronize,
)

H100 = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"}


def test_a_gpu_rank_loads_straight_onto_its_device_and_cpu_is_unchanged():
    assert pretrained_load_kwargs("cuda:3") == ({"device_map": {"": "cuda:3"}}, False)
    assert pretrained_load_kwargs("cpu") == ({}, True)


def test_synchronize_waits_for_a_cuda_device_and_leaves_cpu_alone(monkeypatch):
    import torch

    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    synchronize("cpu")
    assert waited == []
    synchronize("cuda:1")
    assert waited == ["cuda:1"]


def test_the_device_check_compares_uuids_first_then_names():
    assert device_mismatch(H100, "NVIDIA H100 80GB HBM3", "8932f937-d72c-4106-c12f-20bd9faed9f6") is None
    wrong = device_mismatch(H100, "NVIDIA H100 80GB HBM3", "1c5a0b5e-2e2f-6a43-8a21-3f5e9f0d1b77")
    assert "cuda:0" in wrong and "GPU-8932f937" in wrong and "CUDA_DEVICE_ORDER=PCI_BUS_ID" in wrong
    # no uuid from torch: the name decides
    assert device_mismatch(H100, "NVIDIA H100 80GB HBM3", None) is None
    assert "Tesla T4" in device_mismatch(H100, "Tesla T4", None)
    assert device_mismatch({"index": 0, "name": "A", "uuid": None}, "B", "x") is not None
    # nothing promised (an older job file) or a MIG slice: nothing to compare
    assert device_mismatch(None, "anything", None) is None
    assert device_mismatch({"index": 0, "name": "X MIG 1g.5gb", "uuid": "MIG-abc"}, "X", "def") is None


@pytest.mark.parametrize("free_gib, skipped", [(None, True), (0.5, True), (2.4, True), (2.6, False), (80, False)])
def test_the_bandwidth_probe_is_skipped_when_memory_is_short(free_gib, skipped):
    free = None if free_gib is None else int(free_gib * 2**30)
    reason = probe_decision("cuda:0", free)
    assert (reason is not None) == skipped
    if skipped:
        assert reason.startswith("bandwidth probe skipped")


def test_the_cpu_probe_is_never_skipped():
    assert probe_decision("cpu", None) is None


def test_memory_peaks_are_three_fields_and_cpu_has_no_device_figures():
    peaks = memory_peaks("cpu")
    assert peaks["device_allocated_peak_bytes"] is None and peaks["device_reserved_peak_bytes"] is None
    assert peaks["host_rss_peak_bytes"] > 0
    assert legacy_peak_bytes(peaks) == peaks["host_rss_peak_bytes"]
    gpu = {"device_allocated_peak_bytes": 5, "device_reserved_peak_bytes": 8, "host_rss_peak_bytes": 100}
    assert legacy_peak_bytes(gpu) == 5
