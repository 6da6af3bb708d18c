"""duplex_steer.audio: channels mixed down to mono."""

from __future__ import annotations

import numpy as np

from duplex_steer.audio import to_mono


def test_to_mono_averages_channels_unless_they_cancel():
    tone = np.sin(np.linspace(0, 200, 4000)).astype(np.float32)
    np.testing.assert_allclose(to_mono(np.stack([tone, 0.5 * tone], 1)), 0.75 * tone, atol=1e-7)
    np.testing.assert_allclose(to_mono(np.stack([tone, np.zeros_like(tone)], 1)), 0.5 * tone, atol=1e-7)  # one side
    np.testing.assert_array_equal(to_mono(np.stack([tone, -0.9 * tone], 1)), tone)  # opposite phase: the louder one
    np.testing.assert_array_equal(to_mono(np.zeros((10, 2), np.float32)), np.zeros(10, np.float32))
    np.testing.assert_array_equal(to_mono(tone), tone)
