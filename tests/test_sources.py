"""Decoding the odd real inputs of ../shared/data/edge_cases and the sample video."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, VIDEO
from extractor.media import ExtractMedia
from extractor.sources import InputError, InputSource, SkippedInput, read_image

EDGE = DATA / "edge_cases"


@pytest.mark.parametrize("name", ["32bit.png", "hopper_gray.jpg", "pil_sample_cmyk.jpg",
                                  "hopper_orientation_6.jpg", "dogs.jpg", "t1.jpg"])
def test_odd_formats_become_8bit_bgr(name):
    image, warning = read_image(EDGE / name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert warning is None


def test_exif_orientation_is_applied():
    raw = Image.open(EDGE / "hopper_orientation_6.jpg")
    image, _ = read_image(EDGE / "hopper_orientation_6.jpg")
    assert raw.getexif().get(0x0112) == 6
    assert image.shape[:2] == (raw.size[0], raw.size[1])  # width and height swapped


def test_sixteen_bit_png_is_scaled(tmp_path):
    gray = np.asarray(Image.open(EDGE / "hopper_gray.jpg")).astype(np.uint16) * 257
    path = tmp_path / "deep.png"
    Image.fromarray(gray).save(path)
    image, _ = read_image(path)
    assert image.dtype == np.uint8
    assert abs(int(image[..., 0].astype(int).mean()) - int(gray.mean() / 257)) <= 1


def test_empty_file_is_refused_with_its_name():
    with pytest.raises(InputError, match="made_by_us_empty.jpg: empty file"):
        read_image(EDGE / "made_by_us_empty.jpg")


def test_truncated_file_decodes_in_part_with_a_warning():
    image, warning = read_image(EDGE / "made_by_us_truncated_2008_001322.jpg")
    assert image.shape[2] == 3
    assert "made_by_us_truncated_2008_001322.jpg: truncated" in warning


def test_folder_skips_bad_files_and_goes_on(tmp_path):
    for name in ("made_by_us_empty.jpg", "hopper_gray.jpg", "dogs.jpg"):
        shutil.copy(EDGE / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    items = list(InputSource(tmp_path))
    skipped = [i for i in items if isinstance(i, SkippedInput)]
    frames = [i for i in items if not isinstance(i, SkippedInput)]
    assert [f.filename for f in frames] == ["dogs.jpg", "hopper_gray.jpg"]
    assert {s.source.split("/")[-1] for s in skipped} == {"made_by_us_empty.jpg", "notes.txt"}


def test_video_every_nth_frame():
    frames = list(InputSource(VIDEO, every_n=25))
    assert [f.frame_index for f in frames] == list(range(0, 275, 25))
    assert frames[1].filename == "short_hamilton_clip_000026.mp4"  # faceswap's video frame key (2.4)
    assert frames[0].image.shape == (360, 640, 3)


def test_extract_media_interface():
    image, _ = read_image(EDGE / "hopper_gray.jpg")
    media = ExtractMedia("hopper_gray", image)
    assert media.image_shape == image.shape and media.image_size == image.shape[:2]
    rgb = media.get_image_copy("RGB")
    assert np.array_equal(rgb[..., ::-1], image) and rgb is not image
    assert media.get_image_copy("GRAY").ndim == 2
    copy = media.get_image_copy("BGR")
    assert copy is not media.image and np.array_equal(copy, image)
    media.remove_image()
    assert media.image_shape == image.shape
    with pytest.raises(ValueError, match="removed"):
        _ = media.image
    media.set_image(image[:10])
    assert media.image_size == (10, image.shape[1])
