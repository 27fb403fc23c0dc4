"""The demo model's pixel-packing codec: exact round trips, the token count of an 8x/4x autoencoder, save/load."""

from __future__ import annotations

import pytest
import torch

from editor.pixel_codec import PixelPackCodec


@pytest.mark.parametrize(("frames", "height", "width"), [(9, 64, 64), (1, 16, 32), (13, 48, 80)])
def test_round_trip_is_exact(frames, height, width):
    codec = PixelPackCodec(scaling_factor=2.0)
    video = torch.rand(2, 3, frames, height, width) * 2 - 1
    latents = codec.encode(video).latent_dist.mode()
    assert latents.shape == (2, 3 * 4 * 8 * 8, 1 + (frames - 1) // 4, height // 8, width // 8)
    assert torch.equal(codec.decode(latents).sample, video)
    shifted = PixelPackCodec(shift_factor=0.1)
    torch.testing.assert_close(shifted.decode(shifted.encode(video).latent_dist.mode()).sample, video)


def test_a_latent_pixel_holds_one_patch_of_frames():
    codec = PixelPackCodec(spatial_compression_ratio=2, temporal_compression_ratio=2)
    video = torch.zeros(1, 3, 5, 4, 4)
    video[0, 1, 3, 2, 3] = 1.0  # green, frame 3, row 2, column 3
    latents = codec.encode(video).latent_dist.mode()
    assert latents.shape == (1, 24, 3, 2, 2)
    nonzero = latents.nonzero().tolist()
    # Frame 3 is the second frame of latent frame 2 (frames 1-2 fill frame 1, 3-4 frame 2): patch row 1, column 1.
    assert len(nonzero) == 1 and nonzero[0][2:] == [2, 1, 1]


def test_first_frame_copies_are_averaged_on_decode():
    codec = PixelPackCodec()
    latents = codec.encode(torch.zeros(1, 3, 5, 8, 8)).latent_dist.mode()
    latents[:, :, 0] = torch.rand_like(latents[:, :, 0])
    out = codec.decode(latents).sample
    expected = latents[:, :, 0].reshape(1, 3, 4, 8, 8, 1, 1, 1).mean(dim=2)
    torch.testing.assert_close(out[0, :, 0], expected.reshape(3, 8, 8))


def test_bad_shapes_are_named():
    codec = PixelPackCodec()
    with pytest.raises(ValueError, match=r"k\*4\+1"):
        codec.encode(torch.zeros(1, 3, 8, 64, 64))
    with pytest.raises(ValueError, match="768 channels"):
        codec.decode(torch.zeros(1, 16, 3, 8, 8))
    with pytest.raises(ValueError, match="scaling_factor"):
        PixelPackCodec(scaling_factor=0.0)


def test_save_and_load(tmp_path):
    PixelPackCodec(scaling_factor=1.7).save_pretrained(tmp_path / "vae")
    loaded = PixelPackCodec.from_pretrained(tmp_path / "vae")
    assert loaded.config.scaling_factor == 1.7 and loaded.dtype == torch.float32


def test_projection_keeps_what_lies_in_the_fitted_subspace(tmp_path):
    # Clips built from 5 patch patterns: 5 components hold them exactly, fewer lose some. (One frame per latent
    # frame, so that decoding does not average the first frame's copies.)
    torch.manual_seed(0)
    exact = PixelPackCodec(spatial_compression_ratio=4, temporal_compression_ratio=1)
    patterns = torch.randn(5, exact.packed_channels)  # 5, P
    weights = torch.randn(6, 5, 3, 4, 4)  # N, K, F', H', W'
    packed = torch.einsum("nkfhw,kp->npfhw", weights, patterns)
    videos = exact.decode(packed).sample  # the clips whose packed patches these are

    codec = PixelPackCodec(spatial_compression_ratio=4, temporal_compression_ratio=1, projection_dim=5)
    kept = codec.fit_projection(videos)
    assert kept == pytest.approx(1.0, abs=1e-6)
    latents = codec.encode(videos).latent_dist.mode()
    assert latents.shape == (6, 5, 3, 4, 4) and codec.latent_channels == 5
    torch.testing.assert_close(codec.decode(latents).sample, videos, atol=1e-4, rtol=0)

    smaller = PixelPackCodec(spatial_compression_ratio=4, temporal_compression_ratio=1, projection_dim=3)
    assert smaller.fit_projection(videos) < 0.99
    assert (smaller.decode(smaller.encode(videos).latent_dist.mode()).sample - videos).abs().max() > 0.1

    codec.save_pretrained(tmp_path / "codec")
    loaded = PixelPackCodec.from_pretrained(tmp_path / "codec")
    torch.testing.assert_close(loaded.encode(videos).latent_dist.mode(), latents)
    with pytest.raises(ValueError, match="projection_dim=0"):
        PixelPackCodec(projection_dim=0)
    with pytest.raises(ValueError, match="no projection"):
        exact.fit_projection(videos)


def test_whitening_gives_every_component_unit_variance_and_decodes_the_same(tmp_path):
    # Patch patterns of very different strengths, as a patch's mean colour outweighs its edges in real clips.
    torch.manual_seed(0)
    exact = PixelPackCodec(spatial_compression_ratio=4, temporal_compression_ratio=1)
    patterns = torch.linalg.qr(torch.randn(exact.packed_channels, 4))[0].T * torch.tensor([[8.0], [2.0], [0.5], [0.1]])
    weights = torch.randn(40, 4, 3, 4, 4)  # N, K, F', H', W'
    videos = exact.decode(torch.einsum("nkfhw,kp->npfhw", weights, patterns)).sample

    plain = PixelPackCodec(spatial_compression_ratio=4, temporal_compression_ratio=1, projection_dim=4)
    plain.fit_projection(videos)
    stds = plain.encode(videos).latent_dist.mode().transpose(0, 1).flatten(1).std(dim=1)
    assert stds.max() / stds.min() > 50

    white = PixelPackCodec(spatial_compression_ratio=4, temporal_compression_ratio=1, projection_dim=4, whitening=1.0)
    white.fit_projection(videos)
    latents = white.encode(videos).latent_dist.mode()
    torch.testing.assert_close(latents.transpose(0, 1).flatten(1).std(dim=1), torch.ones(4), atol=0.05, rtol=0)
    torch.testing.assert_close(white.decode(latents).sample, plain.decode(plain.encode(videos).latent_dist.mode())
                               .sample, atol=1e-4, rtol=0)  # fmt: skip

    half = PixelPackCodec(spatial_compression_ratio=4, temporal_compression_ratio=1, projection_dim=4, whitening=0.5)
    half.fit_projection(videos)
    half_stds = half.encode(videos).latent_dist.mode().transpose(0, 1).flatten(1).std(dim=1)
    assert half_stds.max() / half_stds.min() == pytest.approx((stds.max() / stds.min()) ** 0.5, rel=0.05)

    white.save_pretrained(tmp_path / "codec")
    loaded = PixelPackCodec.from_pretrained(tmp_path / "codec")
    torch.testing.assert_close(loaded.encode(videos).latent_dist.mode(), latents)


@pytest.mark.parametrize(("settings", "match"), [
    ({"projection_dim": 4, "whitening": 1.5}, "whitening=1.5"),
    ({"projection_dim": 4, "whitening": -0.1}, "whitening=-0.1"),
    ({"whitening": 1.0}, "needs a projection"),
])  # fmt: skip
def test_bad_whitening_is_named(settings, match):
    with pytest.raises(ValueError, match=match):
        PixelPackCodec(**settings)
