"""Shared image planes: each plane is the value of the function it stands for, computed once, and read-only."""

import threading

import cv2
import numpy as np
import pytest

from quality.analysis import ImagePlanes
from quality.backends import nss_math as nm
from tests.quality.conftest import textured


@pytest.fixture
def rgb():
    return np.ascontiguousarray(np.asarray(textured(seed=3, size=130)))


def test_planes_equal_the_functions_they_stand_for(rgb):
    planes = ImagePlanes(rgb)
    y = nm.luma(rgb)
    assert np.array_equal(planes.luma(), y)
    assert np.array_equal(planes.half_luma(), nm.half(y))
    assert np.array_equal(planes.quarter_luma(), nm.half(nm.half(y)))
    gx, gy = planes.sobel()
    assert np.array_equal(gx, cv2.Sobel(y, cv2.CV_32F, 1, 0)) and np.array_equal(gy, cv2.Sobel(y, cv2.CV_32F, 0, 1))
    mag, ang = planes.polar()
    ref_mag, ref_ang = cv2.cartToPolar(cv2.Sobel(y, cv2.CV_32F, 1, 0), cv2.Sobel(y, cv2.CV_32F, 0, 1))
    assert np.array_equal(mag, ref_mag) and np.array_equal(ang, ref_ang)
    lab = cv2.cvtColor(rgb.astype(np.float32) / np.float32(255.0), cv2.COLOR_RGB2Lab)
    assert np.array_equal(planes.lab(), lab)


def test_a_plane_is_computed_once_and_cannot_be_modified(rgb, monkeypatch):
    calls = []
    real = nm.luma
    monkeypatch.setattr(nm, "luma", lambda x: calls.append(1) or real(x))
    planes = ImagePlanes(rgb)
    barrier = threading.Barrier(4)

    def use():
        barrier.wait()
        planes.half_luma()
        planes.sobel()

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert calls == [1]
    assert planes.luma() is planes.luma()
    with pytest.raises(ValueError, match="read-only"):
        planes.luma()[0, 0] = 1.0


def test_a_given_luma_is_used_as_is(rgb):
    y = nm.luma(rgb)
    assert ImagePlanes(rgb, y).luma() is y
