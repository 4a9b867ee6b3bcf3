"""Image sizing (Qwen2.5-VL patch math) and the safe loader."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from editjudge.data import images as imgs


def _jpeg(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_smart_resize_equals_qwen_vl_utils_on_many_sizes():
    oracle = pytest.importorskip("qwen_vl_utils.vision_process").smart_resize
    rng = random.Random(0)
    checked = 0
    for _ in range(5000):
        h, w = rng.randint(1, 6000), rng.randint(1, 6000)
        if max(h, w) / min(h, w) > 200:
            continue
        min_pixels = rng.choice([None, 3136, 4 * 784, 100 * 784])
        max_pixels = rng.choice([None, 400 * 784, 12845056, rng.randint(100 * 784, 3_000_000)])
        assert imgs.smart_resize(h, w, 28, min_pixels, max_pixels) == oracle(h, w, 28, min_pixels, max_pixels), (h, w)
        checked += 1
    assert checked > 4000


def test_smart_resize_rejects_extreme_aspect_ratio_like_the_library():
    with pytest.raises(ValueError, match="aspect ratio"):
        imgs.smart_resize(10, 2500)


@pytest.mark.parametrize("hw", [(1024, 1024), (768, 1366), (50, 3000), (3000, 4000), (100, 90)])
@pytest.mark.parametrize("max_tokens", [4, 64, 400])
def test_fit_size_is_a_fixed_point_of_the_processor_rule(hw, max_tokens):
    limits = imgs.PixelLimits(min_pixels=4 * 784, max_pixels=16384 * 784)
    try:
        h, w = imgs.fit_size(*hw, max_tokens, limits)
    except imgs.ImageRejected as exc:
        assert exc.reason == "prompt_too_long"
        return
    assert h % 28 == 0 and w % 28 == 0
    assert imgs.image_tokens(h, w) <= max_tokens
    # The processor's own resize leaves the fitted size unchanged, so tokens are exactly (h/28)*(w/28).
    assert imgs.smart_resize(h, w, 28, limits.min_pixels, limits.max_pixels) == (h, w)
    # Aspect ratio kept within one patch of rounding.
    assert abs(h / w - hw[0] / hw[1]) <= 28 / min(h, w) * (hw[0] / hw[1]) + 1e-9


def test_plan_pair_fills_the_budget_and_refuses_what_cannot_fit():
    limits = imgs.PixelLimits()
    src, edt = imgs.plan_pair((1024, 1024), (1024, 1024), 800, limits)
    assert src == edt == (560, 560)  # 400 + 400 tokens
    small_src, big_edt = imgs.plan_pair((112, 112), (1024, 1024), 800, limits)
    assert small_src == (112, 112) and imgs.image_tokens(*big_edt) > 400  # the edit gets what the source left
    assert imgs.image_tokens(*small_src) + imgs.image_tokens(*big_edt) <= 800
    with pytest.raises(imgs.ImageRejected) as info:
        imgs.plan_pair((1024, 1024), (1024, 1024), 7, limits)
    assert info.value.reason == "prompt_too_long"


def test_pixel_limits_read_from_a_real_processor_folder(tiny_model_dir):
    limits = imgs.PixelLimits.from_pretrained(tiny_model_dir)
    from editjudge import tiny

    assert (limits.min_pixels, limits.max_pixels, limits.factor) == (tiny.MIN_PIXELS, tiny.MAX_PIXELS, 28)


def test_jpeg_downscale_uses_reduced_scale_decode_and_hits_the_exact_size():
    data = _jpeg(Image.new("RGB", (1024, 768), (200, 30, 30)))
    image = imgs.load_rgb(data, (336, 448))
    assert image.size == (448, 336) and image.mode == "RGB"
    # draft() is what makes it cheap: the decoder hands over a 1/2-scale image before the resize.
    assert imgs._turbo_eighths((448, 336), (1024, 768)) == 4
    raw = Image.open(io.BytesIO(data))
    raw.draft("RGB", (448, 336))
    assert raw.size == (512, 384)


def _photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Smooth gradients + a few edges + mild noise: JPEG-typical content with detail at every scale."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    base = np.stack([128 + 100 * np.sin(x / (17 + 9 * c) + y / (23 + 5 * c)) for c in range(3)], -1)
    base[(x // 97 + y // 61) % 2 == 0] *= 0.6
    return Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))


def _reference(data: bytes, hw: tuple[int, int]) -> np.ndarray:
    """The slow, obvious way: full decode, upright, bicubic to the exact size."""
    from PIL import ImageOps

    full = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    return np.asarray(full.resize((hw[1], hw[0]), Image.Resampling.BICUBIC), dtype=np.float64)


@pytest.mark.skipif(imgs.simplejpeg is None, reason="simplejpeg not installed")
def test_eighth_scales_pil_lacks_decode_via_libjpeg_turbo_and_match_a_full_decode():
    # 1024 -> 532 (a full 1024-token budget): above 1/2, so no PIL draft; libjpeg-turbo decodes at 5/8 = 640 px.
    data = _jpeg(_photo((1024, 1024)))
    assert imgs._turbo_eighths((532, 532), (1024, 1024)) == 5
    fast = imgs.load_rgb(data, (532, 532))
    assert fast.size == (532, 532) and fast.mode == "RGB"
    diff = np.abs(np.asarray(fast, dtype=np.float64) - _reference(data, (532, 532)))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 8
    # The same pixels on every call (the judge re-sizes at inference exactly as prepare did).
    assert imgs.size_image(data, (532, 532)).bytes == imgs.size_image(data, (532, 532)).bytes


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_upright_on_the_scaled_decode_path(orientation):
    upright = _photo((600, 400), seed=orientation)
    # Store the frame that the orientation tag turns back into `upright` (inverse of PIL's exif_transpose).
    inverse = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_90",
               7: "TRANSVERSE", 8: "ROTATE_270"}
    stored = upright.transpose(getattr(Image.Transpose, inverse[orientation])) if orientation > 1 else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(stored, exif=exif.tobytes())
    info = imgs.probe(data)
    assert info.upright_hw == (400, 600)
    target = imgs.fit_size(*info.upright_hw, 200)  # 336 x 504: 7/8 of the stored frame, not a draft scale
    stored_wh = target if orientation in (5, 6, 7, 8) else target[::-1]
    if imgs.simplejpeg is not None:
        assert imgs._decode_jpeg_scaled(data, Image.open(io.BytesIO(data)), stored_wh) is not None
    out = imgs.load_rgb(data, target)
    assert (out.height, out.width) == target
    diff = np.abs(np.asarray(out, dtype=np.float64) - _reference(data, target))
    assert diff.mean() < 2.0  # a wrong turn or flip would be off by tens of levels


@pytest.mark.parametrize("kind", ["progressive", "grey", "cmyk", "simplejpeg_missing"])
def test_other_jpegs_and_the_pil_fallback_give_the_same_size_and_pixels(kind, monkeypatch):
    photo = _photo((1024, 768), seed=3)
    if kind == "progressive":
        data = _jpeg(photo, progressive=True)
    elif kind == "grey":
        data = _jpeg(photo.convert("L"))
    elif kind == "cmyk":  # libjpeg-turbo's RGB output refuses CMYK: PIL decodes it
        data = _jpeg(photo.convert("CMYK"))
    else:
        data = _jpeg(photo)
        monkeypatch.setattr(imgs, "simplejpeg", None)  # an install without the optional fast decoder
    target = (420, 560)  # 5/8 scale territory
    fast = imgs._decode_jpeg_scaled(data, Image.open(io.BytesIO(data)), target[::-1])
    assert (fast is None) == (kind in ("cmyk", "simplejpeg_missing") or imgs.simplejpeg is None)
    out = imgs.load_rgb(data, target)
    assert out.mode == "RGB" and (out.height, out.width) == target
    assert np.abs(np.asarray(out, dtype=np.float64) - _reference(data, target)).mean() < 2.0


def test_original_bytes_kept_when_nothing_changes_and_reencoded_otherwise():
    data = _jpeg(Image.new("RGB", (224, 168), (10, 120, 200)))
    same = imgs.size_image(data, (168, 224))
    assert same.kept_original and same.bytes == data and same.tokens == 48
    smaller = imgs.size_image(data, (84, 112))
    assert not smaller.kept_original and Image.open(io.BytesIO(smaller.bytes)).size == (112, 84)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _jpeg(Image.new("CMYK", (64, 48), (0, 255, 255, 0))),
        lambda: _png(Image.new("RGBA", (64, 48), (255, 0, 0, 128))),
        lambda: _png(Image.fromarray(np.full((48, 64), 65535, dtype=np.uint16))),
        lambda: _png(Image.new("P", (64, 48))),
        lambda: _png(Image.new("LA", (64, 48), (10, 255))),
    ],
    ids=["cmyk", "rgba", "16bit", "palette", "la"],
)
def test_every_mode_becomes_rgb_with_sensible_pixels(make):
    image = imgs.load_rgb(make(), (56, 84))
    assert image.mode == "RGB" and image.size == (84, 56)
    pixel = image.getpixel((40, 28))
    assert all(0 <= v <= 255 for v in pixel)


def test_sixteen_bit_white_stays_white_and_alpha_composites_on_white():
    white16 = _png(Image.fromarray(np.full((28, 28), 65535, dtype=np.uint16)))
    assert imgs.load_rgb(white16).getpixel((5, 5)) == (255, 255, 255)
    clear = _png(Image.new("RGBA", (28, 28), (0, 0, 0, 0)))
    assert imgs.load_rgb(clear).getpixel((5, 5)) == (255, 255, 255)


def test_exif_rotation_is_applied_before_sizing():
    wide = Image.new("RGB", (96, 64), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 0, 48, 64))  # left half white
    stored = wide.transpose(Image.Transpose.ROTATE_90)  # 64 x 96 stored, orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _jpeg(stored, exif=exif.tobytes())
    info = imgs.probe(data)
    assert (info.width, info.height, info.orientation) == (64, 96, 6) and info.upright_hw == (64, 96)
    upright = imgs.load_rgb(data, (56, 84))
    assert upright.size == (84, 56)
    assert upright.getpixel((10, 28))[0] > 200 and upright.getpixel((74, 28))[0] < 50


def test_truncated_non_image_and_bomb_are_rejected_with_their_reason():
    from editjudge.synthetic import _bomb_png

    data = _jpeg(Image.effect_noise((256, 256), 64).convert("RGB"))
    with pytest.raises(imgs.ImageRejected) as info:
        imgs.size_image(data[: len(data) * 3 // 4], (112, 112))
    assert info.value.reason == "truncated_image"
    big = _jpeg(Image.effect_noise((1024, 1024), 64).convert("RGB"))  # 532 px: the libjpeg-turbo (5/8) path
    with pytest.raises(imgs.ImageRejected) as info:
        imgs.size_image(big[: len(big) * 3 // 4], (532, 532))
    assert info.value.reason == "truncated_image"
    with pytest.raises(imgs.ImageRejected) as info:
        imgs.probe(b"hello, not an image")
    assert info.value.reason == "not_an_image"
    with pytest.raises(imgs.ImageRejected) as info:
        imgs.probe(_bomb_png(30000, 30000))
    assert info.value.reason == "decompression_bomb"
    # The same file passes under a limit that allows it: the guard is the limit, not the file.
    assert imgs.probe(_bomb_png(300, 300)).width == 300


def test_the_mild_step_uses_opencv_bit_exact_and_the_pil_fallback_gives_nearly_the_same_pixels(monkeypatch):
    from editjudge.data import resample

    data = _jpeg(_photo((1024, 1024), seed=11))
    target = (532, 560)  # after the 5/8 decode (640 px): ratios 0.83 and 0.875, the mild step
    pixels = imgs.load_pixels(data, target)
    assert resample._cv2() is not None  # a core dependency: the fast path is the one that runs
    assert isinstance(pixels, np.ndarray) and pixels.shape == (532, 560, 3) and pixels.dtype == np.uint8
    sized = imgs.size_image(data, target)
    assert sized.bytes == imgs.size_image(data, target).bytes  # reruns: the same bytes
    monkeypatch.setattr(resample, "_cv2", lambda: None)  # an install without OpenCV: PIL's bilinear
    fallback = imgs.load_pixels(data, target)
    assert isinstance(fallback, Image.Image) and fallback.size == (560, 532)
    diff = np.abs(pixels.astype(np.float64) - np.asarray(fallback, dtype=np.float64))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 10
    reference = _reference(data, target)
    assert np.abs(pixels - reference).mean() < 2.0  # and both near the slow, obvious way
    assert np.abs(np.asarray(fallback, dtype=np.float64) - reference).mean() < 2.0


def test_encode_jpeg_gives_the_same_bytes_for_an_array_and_a_pil_image_of_the_same_pixels():
    array = np.asarray(_photo((96, 128), seed=2))
    from_array, from_image = imgs.encode_jpeg(array), imgs.encode_jpeg(Image.fromarray(array))
    assert from_array == from_image
    decoded = Image.open(io.BytesIO(from_array))
    assert decoded.mode == "RGB" and decoded.size == (96, 128)  # _photo takes (width, height)
